"""pymlup's ``mlup.constants``, with ``core``'s names as values.

Every enum and member pymlup's constants module has is here, so that code written for pymlup
(``Config(storage_type=constants.StorageType.disk)``) runs with only its import changed. A
member's value is the ``core`` name it stands for (``BinarizationType.JOBLIB`` is ``"pickle"``:
the pickle binarizer reads joblib files). Members with no ``core`` counterpart keep pymlup's
class path as their value; using one is a config error that says what to use instead (see
:data:`core.pymlup.UNSUPPORTED`). ``import core`` imports this module, so
``core.constants.StorageType`` works without importing it first.
"""

from __future__ import annotations

from enum import Enum

from core.analysis import DEFAULT_X_ARG_NAME
from core.components import LoadedFile
from core.web import PREDICT_ID_HEADER

#: pymlup's marker keys in its analysed-argument dicts (``core`` describes arguments with
#: :class:`core.analysis.Argument` instead); kept so that imports of them still work.
IS_X = "is_X"
THERE_IS_ARGS = "there_is_args"
#: pymlup's item id column (``item_id_col_name``); ``core`` adds no such column.
ITEM_ID_COL_NAME = "mlup_item_id"


class ModelLibraryType(str, Enum):
    """pymlup's ``type`` key, which ``core`` does not use (it is accepted with a warning)."""

    SKLEARN = "sklearn"
    SCIKIT_LEARN = "scikit-learn"
    LIGHTGMB = "lightgbm"  # pymlup's spelling
    TENSORFLOW = "tensorflow"
    TORCH = "torch"
    ONNX = "onnx_inference_session"
    other = "other"


class StorageType(str, Enum):
    memory = "memory"
    disk = "disk"


class BinarizationType(str, Enum):
    auto = "auto"
    PICKLE = "pickle"
    JOBLIB = "pickle"
    ONNX_INFERENCE_SESSION = "onnx"
    ONNX_INFERENCE_SESSION_FULL_RETURN = "onnx"  # core returns every output by name
    MEMORY = "mlup.ml.binarization.memory.MemoryBinarizer"
    LIGHTGBM = "lightgbm"  # core-binarizer-lightgbm
    TENSORFLOW = "tensorflow"  # core-binarizer-tensorflow: Keras files and SavedModels
    TENSORFLOW_ZIP = "tensorflow"
    TORCH = "torch"  # core-binarizer-torch: torch.load (runs code: trusted files only)
    TORCH_JIT = "torchscript"  # core-binarizer-torch: torch.jit.load


class ModelDataTransformerType(str, Enum):
    NUMPY_ARR = "numpy"
    SRC_TYPES = "passthrough"
    PANDAS_DF = "pandas"  # core-transformer-pandas
    TENSORFLOW_TENSOR = "tf_tensor"  # core-binarizer-tensorflow
    TORCH_TENSOR = "torch_tensor"  # core-binarizer-torch


class WebAppArchitecture(str, Enum):
    directly_to_predict = "directly_to_predict"
    worker_and_queue = "worker_and_queue"
    batching = "batching"


__all__ = [
    "DEFAULT_X_ARG_NAME",
    "IS_X",
    "ITEM_ID_COL_NAME",
    "PREDICT_ID_HEADER",
    "THERE_IS_ARGS",
    "BinarizationType",
    "LoadedFile",
    "ModelDataTransformerType",
    "ModelLibraryType",
    "StorageType",
    "WebAppArchitecture",
]
