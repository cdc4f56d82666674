"""The benchmark's baseline: the least a Starlette app can do to serve an ONNX model.

``POST /predict`` with ``{"X": [[...], ...]}`` parses the body with orjson, runs the
onnxruntime session directly in the event loop, and answers
``{"predict_result": {output name: values}}``, the same shape as ``core``'s answer for an ONNX
model. ``GET /health`` answers 200. No validation, no thread pool, no plugins.

    BASELINE_MODEL=path/to/model.onnx hypercorn bench.baseline_app:app

With ``BASELINE_SKIP_MODEL=1`` it answers without calling the model (see ``SKIP_MODEL``).

The session uses the same settings as core's ONNX binarizer in the benchmark config
(``intra_op_num_threads = 1``), set with ``BASELINE_INTRA_OP_THREADS``.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def make_session(path: str, intra_op_num_threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_num_threads
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


SESSION = make_session(
    os.environ["BASELINE_MODEL"], int(os.environ.get("BASELINE_INTRA_OP_THREADS", "1"))
)
INPUT_NAME = SESSION.get_inputs()[0].name
OUTPUT_NAMES = [output.name for output in SESSION.get_outputs()]


#: ``BASELINE_SKIP_MODEL=1``: answer every request with the outputs of a zero row, computed
#: once, without calling the model: HTTP, JSON and the conversion to an array alone, the
#: most any architecture could reach on this machine however cheap its model calls became.
SKIP_MODEL = os.environ.get("BASELINE_SKIP_MODEL") == "1"
_ZERO_ROW = np.zeros((1, *[d if isinstance(d, int) else 1 for d in SESSION.get_inputs()[0].shape[1:]]),
                     dtype=np.float32)
_FIXED_OUTPUTS = SESSION.run(OUTPUT_NAMES, {INPUT_NAME: _ZERO_ROW})


async def predict(request: Request) -> Response:
    body = orjson.loads(await request.body())
    X = np.asarray(body[INPUT_NAME], dtype=np.float32)
    outputs = _FIXED_OUTPUTS if SKIP_MODEL else SESSION.run(OUTPUT_NAMES, {INPUT_NAME: X})
    result = {name: value.tolist() for name, value in zip(OUTPUT_NAMES, outputs, strict=True)}
    return Response(orjson.dumps({"predict_result": result}), media_type="application/json")


async def health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health, methods=["GET"])]
)
