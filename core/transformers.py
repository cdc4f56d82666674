"""The built-in data transformers: ``numpy`` (default) and ``passthrough``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.analysis import Argument
from core.components import Transformer
from core.errors import ConfigError


class NumpyTransformer(Transformer):
    """Rows become a numpy array (of ``dtype_for_predict`` or the model's declared dtype);
    results of any shape (arrays, numpy scalars, lists, tuples, dicts, plain values) become
    JSON-ready values."""

    def __init__(self, dtype: str | None = None) -> None:
        if dtype is not None:
            try:
                np.dtype(dtype)
            except TypeError:
                raise ConfigError(f"dtype_for_predict {dtype!r} is not a numpy dtype") from None
        self.dtype = dtype

    def to_model(self, data: Any, argument: Argument) -> Any:
        name = self.dtype or (argument.tensor.dtype if argument.tensor else None)
        dtype = None if name is None else numpy_dtype(name)
        if isinstance(data, np.ndarray) and (dtype is None or data.dtype == dtype):
            return data
        return np.asarray(data, dtype=dtype)

    def from_model(self, data: Any) -> Any:
        return to_jsonable(data)


class PassthroughTransformer(Transformer):
    """Hands the validated JSON values to the model unchanged (pymlup's ``SrcDataTransformer``).
    On the way out, numpy values are still made JSON-ready."""

    def __init__(self, dtype: str | None = None) -> None:
        self.dtype = dtype

    def from_model(self, data: Any) -> Any:
        return to_jsonable(data)


#: numpy's dtype for each dtype name, made once: numpy parses a name at every use.
_DTYPES: dict[str, np.dtype[Any]] = {}


def numpy_dtype(name: str) -> np.dtype[Any]:
    """The numpy dtype of a tensor's ``dtype`` name (``string``: numpy's object arrays, as
    ONNX string tensors are held)."""
    dtype = _DTYPES.get(name)
    if dtype is None:
        dtype = _DTYPES[name] = np.dtype(object if name == "string" else name)
    return dtype


def check_dtype_applies(transformer_name: str, dtype: str | None) -> None:
    """``dtype_for_predict`` with the ``passthrough`` input transformer would be ignored."""
    if dtype is not None and transformer_name == "passthrough":
        raise ConfigError(
            f"dtype_for_predict = {dtype!r} has no effect with data_transformer_for_predict = "
            "'passthrough', which hands the JSON values to the model unchanged; remove it, or use 'numpy'"
        )


#: The array dtypes orjson writes natively (``OPT_SERIALIZE_NUMPY``): bool, the integers and
#: float32/float64, in the machine's byte order.
ORJSON_DTYPES = frozenset(np.dtype(name) for name in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"))


def to_jsonable(data: Any) -> Any:
    """Make ``data`` serialisable by orjson (with ``OPT_SERIALIZE_NUMPY``).

    Contiguous numeric numpy arrays are left for orjson to write natively (fast; orjson writes
    NaN and infinities as ``null``); everything orjson cannot take (object or string arrays,
    non-contiguous views, numpy scalars inside containers, tuples of arrays, sets, NaN floats)
    is converted.
    """
    kind = type(data)
    if kind is np.ndarray:
        if data.dtype in ORJSON_DTYPES and data.flags.c_contiguous:
            return data
        return nan_to_none(data.tolist())
    if kind is dict:
        for key, value in data.items():  # usually arrays orjson writes as they are: no copy
            if (type(key) is not str or type(value) is not np.ndarray or value.dtype not in ORJSON_DTYPES
                    or not value.flags.c_contiguous):
                return {k if type(k) is str else str(k): to_jsonable(v) for k, v in data.items()}
        return data
    if kind is str or kind is int or kind is bool or data is None:
        return data
    if isinstance(data, np.ndarray):  # a subclass
        return to_jsonable(np.asarray(data))
    if isinstance(data, np.generic):
        return nan_to_none(data.item())
    if isinstance(data, dict):
        return {str(k): to_jsonable(v) for k, v in data.items()}
    if isinstance(data, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        return to_jsonable(data.to_dict(orient="records"))
    if hasattr(data, "tolist"):  # pandas Series, torch tensors...
        return to_jsonable(data.tolist())
    return data


def nan_to_none(value: Any) -> Any:
    """``value`` (a float or nested lists, as ``ndarray.tolist()`` gives) with NaN and
    infinities as None, as they are in core's JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [nan_to_none(v) for v in value]
    return value
