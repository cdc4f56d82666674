"""core-binarizer-onnx: the ``onnx`` binarizer, ONNX models run by onnxruntime.

Registered under the name ``onnx`` through the ``core`` entry-point group. The model becomes
an :class:`OnnxModel` whose ``predict`` takes every ONNX input by name and returns every
output by name; its signature carries each input's dtype and shape, so the request schema
comes from the model itself::

    binarization_type = "onnx"
    binarization_kwargs = { intra_op_num_threads = 4 }
"""

from __future__ import annotations

from core.hookspecs import Register, hookimpl

from core_binarizer_onnx.binarizer import OnnxBinarizer
from core_binarizer_onnx.model import ONNX_DTYPES, OnnxModel, TensorInfo

__version__ = "0.1.0"

__all__ = [
    "ONNX_DTYPES",
    "OnnxBinarizer",
    "OnnxModel",
    "TensorInfo",
    "__version__",
    "register_binarizers",
]


@hookimpl
def register_binarizers(register: Register) -> None:
    register("onnx", OnnxBinarizer)
