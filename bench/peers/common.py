"""What every peer app shares: the onnxruntime session and the batching settings, from the
environment that :mod:`bench.model_bound_bench` sets (``PEER_MODEL``, ``PEER_MAX_BATCH_SIZE``,
``PEER_BATCH_WAIT_MS``), so that every server runs the same model the same way.

Imports nothing but numpy and onnxruntime: it runs in each peer's own venv.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

MODEL = os.environ.get("PEER_MODEL", "")
MAX_BATCH_SIZE = int(os.environ.get("PEER_MAX_BATCH_SIZE", "64"))
BATCH_WAIT_MS = float(os.environ.get("PEER_BATCH_WAIT_MS", "2"))
INPUT_NAME = "X"


def make_session(path: str | None = None) -> ort.InferenceSession:
    """The session of ``path`` (default ``PEER_MODEL``) with the settings of core's benchmark
    config and of ``bench.baseline_app``: one intra-op thread, CPU provider."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(path or MODEL, sess_options=options,
                                providers=["CPUExecutionProvider"])


def run(session: ort.InferenceSession, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(label, probabilities)`` for ``rows`` (float32 ``[N, n_features]``)."""
    label, probabilities = session.run(["label", "probabilities"], {INPUT_NAME: rows})
    return label, probabilities
