"""The Open Inference Protocol's tensor datatypes and their numpy and wire forms.

One table, :data:`DATATYPES`, says for each V2 datatype which numpy dtype holds it, how many
bytes one element takes in the binary tensor data extension (``None`` for ``BYTES``, whose
elements are each a 4-byte little-endian length followed by the bytes), and which JSON values
a request may carry for it. Everything else in the plugin reads this table.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np


@attrs.frozen
class Datatype:
    """One V2 datatype.

    :ivar name: the protocol's name (``"FP32"``).
    :ivar dtype: the numpy dtype that holds it (``object`` for ``BYTES``).
    :ivar itemsize: bytes per element on the wire; ``None`` for ``BYTES``.
    :ivar json_kind: the JSON values a request may send: ``"bool"``, ``"int"``, ``"float"``
        (ints accepted) or ``"str"``.
    """

    name: str
    dtype: np.dtype[Any]
    itemsize: int | None
    json_kind: str

    @property
    def wire_dtype(self) -> np.dtype[Any]:
        """The little-endian dtype of the binary tensor data extension."""
        return self.dtype.newbyteorder("<") if self.itemsize and self.itemsize > 1 else self.dtype


def _dt(name: str, dtype: Any, json_kind: str) -> Datatype:
    np_dtype = np.dtype(dtype)
    itemsize = None if np_dtype.kind == "O" else np_dtype.itemsize
    return Datatype(name, np_dtype, itemsize, json_kind)


#: Every datatype the protocol defines, by name.
DATATYPES: dict[str, Datatype] = {
    d.name: d
    for d in (
        _dt("BOOL", np.bool_, "bool"),
        _dt("UINT8", np.uint8, "int"),
        _dt("UINT16", np.uint16, "int"),
        _dt("UINT32", np.uint32, "int"),
        _dt("UINT64", np.uint64, "int"),
        _dt("INT8", np.int8, "int"),
        _dt("INT16", np.int16, "int"),
        _dt("INT32", np.int32, "int"),
        _dt("INT64", np.int64, "int"),
        _dt("FP16", np.float16, "float"),
        _dt("FP32", np.float32, "float"),
        _dt("FP64", np.float64, "float"),
        _dt("BYTES", object, "str"),
    )
}

_BY_NUMPY: dict[str, str] = {
    d.dtype.str.lstrip("<>|="): d.name for d in DATATYPES.values() if d.name != "BYTES"
}


def get(name: Any) -> Datatype | None:
    """The datatype called ``name``, or ``None``."""
    return DATATYPES.get(name) if isinstance(name, str) else None


def names() -> list[str]:
    return list(DATATYPES)


def from_numpy(dtype: Any) -> str:
    """The V2 datatype for a numpy dtype (or a dtype name such as ``"float32"`` or ONNX's
    ``"string"``). Strings, bytes and objects are ``BYTES``."""
    if isinstance(dtype, str) and dtype in ("string", "str", "bytes", "object"):
        return "BYTES"
    np_dtype = np.dtype(dtype)
    if np_dtype.kind in "OSU":
        return "BYTES"
    return _BY_NUMPY.get(np_dtype.str.lstrip("<>|="), "BYTES")


def to_numpy(name: str) -> np.dtype[Any]:
    """The numpy dtype that holds a V2 datatype (``object`` for ``BYTES``)."""
    return DATATYPES[name].dtype


__all__ = ["DATATYPES", "Datatype", "from_numpy", "get", "names", "to_numpy"]
