"""The model-bound MLP served by BentoML with adaptive batching.

A service with one worker and one batchable API: a request ``{"X": [[...]]}`` is an array
whose first dimension is the batch dimension; BentoML's dispatcher concatenates the arrays
of up to ``max_batch_size`` requests, calls ``predict`` once, and splits the answer back;
each request gets its rows of ``probabilities`` (a JSON list of lists; the label is their
argmax, computed by the same ONNX graph in every other server).

    PEER_MODEL=model.onnx bentoml serve bench.peers.bentoml_app:MLP --port PORT

``max_latency_ms`` is BentoML's latency budget, past which it answers 503 rather than queue;
the benchmark sets it well above any latency seen (10 s) so that it never sheds load: the
batch window itself is adaptive (BentoML fits it to the measured batch times).
"""

from __future__ import annotations

import bentoml
import numpy as np

from bench.peers.common import MAX_BATCH_SIZE, make_session, run


@bentoml.service(workers=1, traffic={"timeout": 60})
class MLP:
    """One batchable endpoint, ``POST /predict``."""

    def __init__(self) -> None:
        self.session = make_session()

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=10_000)
    def predict(self, X: np.ndarray) -> np.ndarray:
        return run(self.session, X.astype(np.float32, copy=False))[1]
