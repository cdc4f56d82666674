"""MLServer's content types: how the ``content_type`` parameter of a request, an input or a
requested output says what the tensors hold.

MLServer's codecs (``mlserver.codecs``) put them there: ``NumpyRequestCodec`` sends the
request parameter ``content_type = "np"`` (the request is one tensor), ``StringRequestCodec``
``"str"`` (one BYTES input of UTF-8 strings), ``PandasCodec`` ``"pd"`` (each input is a column
of a table); on an input, ``"np"``, ``"str"`` (UTF-8 text), ``"base64"`` (each element is
base64 of the bytes), ``"datetime"`` (each element an ISO 8601 date and time) or ``"pd_json"``
(each element a JSON value, what ``PandasCodec`` sends for a column of mixed values).

This module checks the names (an unknown one is a 400, never ignored) and turns a BYTES
input's elements into what its content type says; the adapters (:mod:`core_protocol_v2.model`)
decide what a request-level content type means for the model they feed. On a requested output,
``"np"``, ``"str"``, ``"base64"`` and ``"datetime"`` say how to send it, and the output
carries the content type back in its ``parameters`` (MLServer's codecs decode it by that).
"""

from __future__ import annotations

import base64
import binascii
import datetime
from typing import Any

import numpy as np
import orjson

from core_protocol_v2.codec import InferInput, OutputTensor, V2Error

#: Request-level content types: what the whole request is (MLServer's request codecs).
REQUEST_CONTENT_TYPES = ("np", "pd", "str")
#: Input-level content types: what one input's elements are (MLServer's input codecs).
INPUT_CONTENT_TYPES = ("np", "str", "base64", "datetime", "pd_json")
#: Content types a requested output may ask for.
OUTPUT_CONTENT_TYPES = ("np", "str", "base64", "datetime")
#: Content types that only apply to BYTES tensors.
_BYTES_ONLY = frozenset({"str", "base64", "datetime", "pd_json"})


def _name(value: Any, allowed: tuple[str, ...], where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise V2Error(
            f"{where}: unknown content_type {value!r}; this server takes {', '.join(allowed)} "
            f"(MLServer's content types)"
        )
    return value


def request_content_type(parameters: dict[str, Any]) -> str | None:
    """The request-level ``content_type`` (``np``, ``pd``, ``str``) or None; 400 for another."""
    return _name(parameters.get("content_type"), REQUEST_CONTENT_TYPES, "request parameters")


def input_content_type(tensor: InferInput) -> str | None:
    """The input's ``content_type`` or None; 400 for an unknown one or one that needs BYTES
    on another datatype."""
    content_type = _name(tensor.parameters.get("content_type"), INPUT_CONTENT_TYPES,
                         f"input {tensor.name!r}")
    if content_type in _BYTES_ONLY and tensor.datatype != "BYTES":
        raise V2Error(
            f"input {tensor.name!r}: content_type {content_type!r} is for BYTES inputs; "
            f"this one is {tensor.datatype}"
        )
    return content_type


def output_content_type(name: str, parameters: dict[str, Any]) -> str | None:
    """A requested output's ``content_type`` or None; 400 for one this server cannot send."""
    return _name(parameters.get("content_type"), OUTPUT_CONTENT_TYPES, f"output {name!r}")


def _element(tensor: InferInput, index: int, item: Any, what: str) -> V2Error:
    shown = repr(item)[:40]
    return V2Error(f"input {tensor.name!r}: BYTES element {index} ({shown}) is not {what}")


def _text(tensor: InferInput, index: int, item: Any) -> str:
    if isinstance(item, str):
        return item
    try:
        return bytes(item).decode()
    except UnicodeDecodeError:
        raise _element(tensor, index, item, "UTF-8 text") from None


def elements(tensor: InferInput, *, text_only: bool) -> np.ndarray[Any, Any]:
    """The input's data with each BYTES element as its content type says: ``str`` for
    ``"str"`` (UTF-8, or a 400 naming the element), ``bytes`` for ``"base64"``,
    :class:`datetime.datetime` for ``"datetime"``, any JSON value for ``"pd_json"``; without a
    content type, ``str`` when the bytes are UTF-8 text and the bytes themselves otherwise.

    ``text_only`` (a model whose input takes strings, as ONNX's do: they are UTF-8) makes
    every element a ``str``: bytes that are not UTF-8 and values that are not text (dates,
    JSON numbers) are a 400 naming the input and the element. Other datatypes are returned
    as they are.
    """
    content_type = input_content_type(tensor)
    if tensor.datatype != "BYTES":
        return tensor.data
    flat = tensor.data.ravel()
    out = np.empty(flat.shape, dtype=object)
    for index, item in enumerate(flat):
        if content_type == "base64":
            try:
                item = base64.b64decode(item, validate=True)
            except (binascii.Error, ValueError):
                raise _element(tensor, index, item, "base64 (content_type 'base64')") from None
        elif content_type == "datetime":
            try:
                item = datetime.datetime.fromisoformat(_text(tensor, index, item))
            except ValueError:
                raise _element(tensor, index, item, "an ISO 8601 date (content_type 'datetime')") from None
        elif content_type == "pd_json":
            try:
                item = orjson.loads(item)
            except orjson.JSONDecodeError:
                raise _element(tensor, index, item, "JSON (content_type 'pd_json')") from None
        if isinstance(item, (bytes, bytearray)):
            if content_type == "str" or text_only:
                item = _text(tensor, index, item)
            elif content_type != "base64":
                try:
                    item = bytes(item).decode()
                except UnicodeDecodeError:  # not text: the model gets the bytes
                    item = bytes(item)
        if text_only and not isinstance(item, str):
            raise V2Error(
                f"input {tensor.name!r}: element {index} is {type(item).__name__} "
                f"{repr(item)[:40]} (content_type {content_type!r}); the model takes strings"
            )
        out[index] = item
    return out.reshape(tensor.data.shape)


def encode_output(tensor: OutputTensor, content_type: str | None) -> OutputTensor:
    """``tensor`` sent as a requested output's ``content_type`` asks, with the content type in
    its parameters: ``"base64"`` encodes each BYTES element, ``"datetime"`` writes dates as
    ISO 8601, ``"str"`` needs text; a content type that does not fit the output is a 400."""
    if content_type is None:
        return tensor
    if content_type in _BYTES_ONLY and tensor.datatype != "BYTES":
        raise V2Error(
            f"output {tensor.name!r} is {tensor.datatype}; content_type {content_type!r} is for "
            f"BYTES outputs (use 'np')"
        )
    data = tensor.data
    if content_type in ("base64", "datetime", "str"):
        flat = data.ravel()
        out = np.empty(flat.shape, dtype=object)
        for index, item in enumerate(flat):
            if content_type == "base64":
                raw = item.encode() if isinstance(item, str) else bytes(item)
                item = base64.b64encode(raw)
            elif content_type == "datetime" and isinstance(item, (datetime.date, datetime.time)):
                item = item.isoformat()
            elif content_type == "str" and isinstance(item, (bytes, bytearray)):
                try:
                    item = bytes(item).decode()
                except UnicodeDecodeError:
                    raise V2Error(
                        f"output {tensor.name!r}: element {index} is not UTF-8 text "
                        f"(content_type 'str'); request it with content_type 'base64'"
                    ) from None
            out[index] = item
        data = out.reshape(data.shape)
    return OutputTensor(tensor.name, tensor.datatype, data,
                        {**tensor.parameters, "content_type": content_type})


__all__ = [
    "INPUT_CONTENT_TYPES",
    "OUTPUT_CONTENT_TYPES",
    "REQUEST_CONTENT_TYPES",
    "elements",
    "encode_output",
    "input_content_type",
    "output_content_type",
    "request_content_type",
]
