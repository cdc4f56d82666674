"""The model-bound MLP served by MLServer with adaptive batching: a custom runtime.

MLServer reads ``model-settings.json`` (written by :mod:`bench.model_bound_bench`):
``implementation`` names :class:`MLPRuntime`, ``max_batch_size`` and ``max_batch_time``
(seconds, must be above 0 for batching) turn adaptive batching on, ``parameters.uri`` is
the ONNX file. A request is a V2 inference request (``POST /v2/models/mlp/infer``) with one
FP32 input ``X`` of shape ``[1, n_features]``; MLServer merges the inputs of a batch along
the first dimension, calls ``predict`` once, and splits the outputs ``label`` and
``probabilities`` back per request.
"""

from __future__ import annotations

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from bench.peers.common import make_session, run


class MLPRuntime(MLModel):
    """Runs the ONNX session of ``parameters.uri`` on each (batched) request."""

    async def load(self) -> bool:
        uri = self.settings.parameters.uri if self.settings.parameters else None
        self.session = make_session(uri)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        label, probabilities = run(self.session, rows)
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("label", label),
                     NumpyCodec.encode_output("probabilities", probabilities)],
        )
