"""The model-bound MLP served by LitServe with its batching on.

A ``LitAPI`` with ``max_batch_size`` and ``batch_timeout`` (LitServe >= 0.2.17 takes them on
the API, not on ``LitServer``): ``decode_request`` turns a request ``{"X": [[...]]}`` (one
row) into a row, the default ``batch`` stacks the rows of up to ``max_batch_size`` requests
into one array, ``predict`` runs the session once on it and returns one answer per row, and
``encode_response`` answers ``{"label": int, "probabilities": [...]}``. One inference worker
on the CPU, one API server process.

    PEER_MODEL=model.onnx python bench/peers/litserve_app.py PORT

``batch_timeout`` is ``PEER_BATCH_WAIT_MS`` (LitServe's ``0`` polls its queue without
sleeping, which would take the core the servers share, so the benchmark gives it a wait).
"""

from __future__ import annotations

import sys
from typing import Any

import litserve as ls
import numpy as np

from bench.peers.common import BATCH_WAIT_MS, MAX_BATCH_SIZE, make_session, run


class MLPAPI(ls.LitAPI):
    """One row a request, batched by LitServe."""

    def setup(self, device: str) -> None:
        self.session = make_session()

    # No annotation on ``request`` nor on encode_response's return: LitServe reads them to
    # type the endpoint (unannotated: the request's JSON as a dict, the answer as JSON).
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        (row,) = request["X"]
        return np.asarray(row, dtype=np.float32)

    def predict(self, x: np.ndarray) -> list[dict[str, Any]]:
        label, probabilities = run(self.session, x)
        return [{"label": int(row_label), "probabilities": row.tolist()}
                for row_label, row in zip(label, probabilities, strict=True)]

    def encode_response(self, output: dict[str, Any]):  # type: ignore[no-untyped-def]
        return output


if __name__ == "__main__":
    api = MLPAPI(max_batch_size=MAX_BATCH_SIZE, batch_timeout=BATCH_WAIT_MS / 1000)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=60)
    server.run(host="127.0.0.1", port=int(sys.argv[1]), num_api_servers=1,
               generate_client_file=False, log_level="warning")
