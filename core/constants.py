"""pymlup-compatible names, so that ``constants.StorageType.disk`` keeps working."""

from __future__ import annotations

from enum import Enum

from core.analysis import DEFAULT_X_ARG_NAME
from core.components import LoadedFile
from core.web import PREDICT_ID_HEADER


class StorageType(str, Enum):
    memory = "memory"
    disk = "disk"


class BinarizationType(str, Enum):
    auto = "auto"
    PICKLE = "pickle"
    JOBLIB = "pickle"
    ONNX_INFERENCE_SESSION = "onnx"


class ModelDataTransformerType(str, Enum):
    NUMPY_ARR = "numpy"
    SRC_TYPES = "passthrough"


class WebAppArchitecture(str, Enum):
    directly_to_predict = "directly_to_predict"
    worker_and_queue = "worker_and_queue"
    batching = "batching"


__all__ = [
    "DEFAULT_X_ARG_NAME",
    "PREDICT_ID_HEADER",
    "BinarizationType",
    "LoadedFile",
    "ModelDataTransformerType",
    "StorageType",
    "WebAppArchitecture",
]
