"""pymlup compatibility, gathered in one place so that it is easy to see and, one day, to retire.

A pymlup user switches by changing an import (``import core as mlup``). Everything ``core``
accepts or provides only because pymlup did lives here, or names this module:

* :data:`LEGACY_KEYS`: pymlup config keys ``core`` does not use, accepted (in files, dicts and
  ``Config(**keys)``) with a warning that says why (:func:`pop_legacy_keys`);
* :data:`CLASS_PATHS`: pymlup's class paths for storages, binarizers, transformers and
  architectures, mapped to ``core``'s names; :data:`UNSUPPORTED`: pymlup classes ``core`` has
  no counterpart for, refused with what to use instead (:func:`resolve_class_path`);
* the config shapes: pymlup's ``{"version": "1", "ml": {...}, "web": {...}}`` read by
  :func:`flatten` and written by :func:`nest`;
* :data:`MODULE_PATHS`: pymlup module paths that also exist under ``core``
  (``from core.ml.empty import EmptyModel``), installed by :func:`install_module_paths`.

:mod:`core.constants` holds pymlup's enums (``mlup.constants``) with ``core``'s names as
values. The README's "Coming from pymlup" section lists every behaviour that differs.

This module sits low, next to :mod:`core.config`: it imports only :mod:`core.errors`.
"""

from __future__ import annotations

import enum
import importlib
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from core.errors import ConfigError

logger = logging.getLogger("core")

#: pymlup keys that ``core`` accepts but does not need, and why (logged, never silent).
LEGACY_KEYS: dict[str, str] = {
    "type": "the binarizer is chosen by binarization_type (or detected by 'auto')",
    "column_validation": "columns are always validated when `columns` is set",
    "custom_column_pydantic_model": "validation is built from `columns` and the model signature",
    "uvicorn_kwargs": "core is served by hypercorn; pass hypercorn options on its command line",
    "item_id_col_name": "results are returned in request order; no item id column is added",
    "web_app_version": "the API version is the model's `version`",
    "min_batch_len": "batching sends a batch when it holds max_batch_size rows or when the "
    "oldest request has waited max_batch_wait milliseconds; set those instead",
    "batch_worker_timeout": "batching waits at most max_batch_wait (milliseconds, counted from "
    "the oldest waiting request's arrival); set that instead",
}

#: pymlup's class paths, by component kind, and the ``core`` name each stands for.
CLASS_PATHS: dict[str, dict[str, str]] = {
    "storage": {
        "mlup.ml.storage.memory.MemoryStorage": "memory",
        "mlup.ml.storage.local_disk.DiskStorage": "disk",
    },
    "binarizer": {
        "mlup.ml.binarization.pickle.PickleBinarizer": "pickle",
        "mlup.ml.binarization.joblib.JoblibBinarizer": "pickle",
        "mlup.ml.binarization.onnx.InferenceSessionBinarizer": "onnx",
        "mlup.ml.binarization.onnx.InferenceSessionFullReturnBinarizer": "onnx",
        "mlup.ml.binarization.lightgbm.LightGBMBinarizer": "lightgbm",
        "mlup.ml.binarization.tensorflow.TensorFlowBinarizer": "tensorflow",
        "mlup.ml.binarization.tensorflow.TensorFlowSavedBinarizer": "tensorflow",
        "mlup.ml.binarization.torch.TorchBinarizer": "torch",
        "mlup.ml.binarization.torch.TorchJITBinarizer": "torchscript",
    },
    "transformer": {
        "mlup.ml.data_transformers.numpy_data_transformer.NumpyDataTransformer": "numpy",
        "mlup.ml.data_transformers.src_data_transformer.SrcDataTransformer": "passthrough",
        "mlup.ml.data_transformers.pandas_data_transformer.PandasDataFrameTransformer": "pandas",
        "mlup.ml.data_transformers.tf_tensor_data_transformer.TFTensorDataTransformer": "tf_tensor",
        "mlup.ml.data_transformers.torch_tensor_data_transformer.TorchTensorDataTransformer": (
            "torch_tensor"
        ),
    },
    "architecture": {
        "mlup.web.architecture.directly_to_predict.DirectlyToPredictArchitecture": (
            "directly_to_predict"
        ),
        "mlup.web.architecture.worker_and_queue.WorkerAndQueueArchitecture": "worker_and_queue",
        "mlup.web.architecture.batching.BatchingSingleProcessArchitecture": "batching",
    },
}

#: pymlup classes with no ``core`` counterpart, and what to do instead.
UNSUPPORTED: dict[str, dict[str, str]] = {
    "binarizer": {
        "mlup.ml.binarization.memory.MemoryBinarizer": (
            "an object in memory needs no binarizer: storage_type = 'memory' hands it to core "
            "as it is (UP(ml_model=...))"
        ),
    },
}

#: pymlup module paths that also resolve under ``core``: the alias and the module it names.
MODULE_PATHS: dict[str, str] = {
    "core.ml.empty": "core.empty",  # mlup.ml.empty.EmptyModel
}

#: pymlup's config-file format version, written at the top of its JSON and YAML files.
FORMAT_VERSION = "1"

#: The keys of pymlup's ``ml`` section (ModelConfig), plus ``core``'s own model-side keys.
#: Every other key belongs to the ``web`` section (WebAppConfig).
ML_KEYS: frozenset[str] = frozenset({
    "name", "version", "type", "columns", "predict_method_name", "auto_detect_predict_params",
    "storage_type", "storage_kwargs", "binarization_type", "binarization_kwargs",
    "use_thread_loop", "max_thread_loop_workers", "max_inline_predict_ms",
    "data_transformer_for_predict", "data_transformer_for_predicted", "dtype_for_predict",
})


# ---------------------------------------------------------------------- config keys


def pop_legacy_keys(keys: dict[str, Any], source: str) -> dict[str, Any]:
    """``keys`` without pymlup's legacy keys, logging for each one why ``core`` does not use it."""
    kept = {}
    for key, value in keys.items():
        if key in LEGACY_KEYS:
            logger.warning("%s: key %r is not used by core: %s", source, key, LEGACY_KEYS[key])
        else:
            kept[key] = value
    return kept


def legacy_attribute_error(owner: str, name: str) -> AttributeError:
    """The error for reading a legacy key as an attribute (``conf.uvicorn_kwargs``)."""
    if name in LEGACY_KEYS:
        return AttributeError(
            f"{owner} has no {name!r}: pymlup's key is accepted but not used by core: "
            f"{LEGACY_KEYS[name]}"
        )
    return AttributeError(f"{owner!r} object has no attribute {name!r}")


def enum_value(value: Any) -> Any:
    """pymlup users pass ``StorageType.disk`` and friends: their value is the setting."""
    return value.value if isinstance(value, enum.Enum) else value


# ---------------------------------------------------------------------- class paths


def resolve_class_path(kind: str, name: str, config_key: str) -> str:
    """``core``'s name for a pymlup class path (``name`` itself when it is not one); a pymlup
    class ``core`` has no counterpart for is a :class:`ConfigError` saying what to use."""
    reason = UNSUPPORTED.get(kind, {}).get(name)
    if reason is not None:
        short = name.rsplit(".", 1)[-1]
        raise ConfigError(f"{config_key} = {name!r}: core has no counterpart of pymlup's {short}; {reason}")
    return CLASS_PATHS.get(kind, {}).get(name, name)


# ---------------------------------------------------------------------- config shapes


def flatten(data: Mapping[str, Any], source: str | None) -> dict[str, Any]:
    """A config as flat keys; pymlup's ``{"version": "1", "ml": {...}, "web": {...}}`` layout
    is read section by section (a key set in both sections is an error)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a config must be a mapping, got {type(data).__name__}")
    if "ml" not in data and "web" not in data:
        return dict(data)
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("ml", "web"):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: section {key!r} must be a mapping")
            for inner, inner_value in value.items():
                if inner in flat:
                    raise ConfigError(f"{source}: key {inner!r} is set in two sections")
                flat[inner] = inner_value
        elif key == "version" and isinstance(value, (str, int)) and str(value) == FORMAT_VERSION:
            continue  # pymlup's config-format version, not the model's
        else:
            flat[key] = value
    return flat


def nest(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat keys in pymlup's ``{"ml": {...}, "web": {...}}`` shape, as pymlup's
    ``UP.to_dict()`` returns it; values are plain (enums as their value, compiled regular
    expressions as their pattern) so that the result can be written as JSON or YAML."""
    nested: dict[str, dict[str, Any]] = {"ml": {}, "web": {}}
    for key, value in flat.items():
        nested["ml" if key in ML_KEYS else "web"][key] = plain(value)
    return nested


def file_shape(flat: Mapping[str, Any]) -> dict[str, Any]:
    """What pymlup writes to a JSON or YAML config file: the format version, then the sections."""
    return {"version": FORMAT_VERSION, **nest(flat)}


def plain(value: Any) -> Any:
    """``value`` with enums as their value, compiled patterns as their text and paths as
    strings, in nested dicts and lists too (new containers: changing them does not change the
    config)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {key: plain(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(inner) for inner in value]
    return value


# ---------------------------------------------------------------------- module paths


def install_module_paths(paths: Iterable[tuple[str, str]] | None = None) -> None:
    """Make each alias in :data:`MODULE_PATHS` importable as the module it names, without a
    file of its own: ``from core.ml.empty import EmptyModel`` finds ``core.empty``'s class.

    ``core/__init__.py`` calls this once; importing ``core.ml.empty`` imports ``core`` first,
    so the alias is in place before Python looks for it.
    """
    for alias, target in paths if paths is not None else MODULE_PATHS.items():
        module = importlib.import_module(target)
        parent_name, _, attribute = alias.rpartition(".")
        sys.modules.setdefault(alias, module)
        setattr(importlib.import_module(parent_name), attribute, module)


#: The name pymlup's ONNX binarizer gave a single-input model's rows (``predict(input_data)``).
INPUT_DATA = "input_data"


def input_aliases(arguments: tuple[Any, ...]) -> dict[str, str]:
    """``{"input_data": <its argument>}`` for a model whose single argument is a declared
    tensor (a single-input ONNX model), as pymlup's wire format takes it
    (``pymlup_wire_format``, :mod:`core.pymlup_wire`); else none."""
    if len(arguments) == 1 and arguments[0].tensor is not None and arguments[0].name != INPUT_DATA:
        return {INPUT_DATA: arguments[0].name}
    return {}
