"""Reading V2 inference requests and writing V2 responses, JSON and binary.

The binary tensor data extension: when the ``Inference-Header-Content-Length`` header is set,
the body is that many bytes of JSON followed by the raw tensors, in input order, of every input
whose ``parameters`` hold ``binary_data_size``. Numbers are little-endian, ``BOOL`` is one byte
per element, and each ``BYTES`` element is a 4-byte little-endian length then its bytes. A
response uses the same framing for the outputs requested as binary.

Everything here raises :class:`V2Error` (status 400) for a malformed request, naming the
input or output at fault.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import attrs
import numpy as np
import orjson

from core.errors import RequestError
from core_protocol_v2 import datatypes
from core_protocol_v2.datatypes import Datatype

HEADER_LENGTH = "Inference-Header-Content-Length"
#: The most dimensions a tensor has (numpy's limit), and so how deep JSON ``data`` nests.
MAX_DIMENSIONS = 64
#: The most elements a shape's non-zero dimensions multiply to (numpy's index type).
MAX_ELEMENTS = 2**63 - 1

#: Request parameters the protocol itself uses; they are not passed to the model.
RESERVED_PARAMETERS = frozenset(
    {"binary_data_output", "sequence_id", "sequence_start", "sequence_end", "priority",
     "timeout", "headers"}
)
#: Input/output parameters the protocol itself uses.
RESERVED_TENSOR_PARAMETERS = frozenset({"binary_data_size", "binary_data", "classification"})


class V2Error(RequestError):
    """A request the protocol refuses: answered ``{"error": message}`` with ``status``
    (through the admission gate's V2 error format, :data:`core_protocol_v2.routes.V2_ERRORS`)."""

    type = "v2_error"

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = self.status_code = status


@attrs.define
class InferInput:
    """One decoded input tensor. ``data`` is a numpy array of ``shape``; for ``BYTES`` an
    object array of :class:`bytes`."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray[Any, Any]
    parameters: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class RequestedOutput:
    name: str
    binary: bool | None = None
    parameters: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class InferRequest:
    id: str | None
    inputs: list[InferInput]
    outputs: list[RequestedOutput] | None
    parameters: dict[str, Any]

    @property
    def binary_output(self) -> bool:
        """The request-level default for outputs not listed with their own ``binary_data``."""
        return bool(self.parameters.get("binary_data_output", False))

    def model_parameters(self) -> dict[str, Any]:
        return {k: v for k, v in self.parameters.items() if k not in RESERVED_PARAMETERS}


@attrs.define
class OutputTensor:
    """One output to send: ``data`` a numpy array whose dtype matches ``datatype``."""

    name: str
    datatype: str
    data: np.ndarray[Any, Any]
    parameters: dict[str, Any] = attrs.Factory(dict)

    @property
    def shape(self) -> list[int]:
        return [int(d) for d in self.data.shape]


# ---------------------------------------------------------------------- reading


def decode_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse an inference request body (JSON, or JSON + binary tensors)."""
    binary = b""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise V2Error(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
        if length < 0 or length > len(body):
            raise V2Error(f"{HEADER_LENGTH} is {length} but the body has {len(body)} bytes")
        body, binary = body[:length], body[length:]
    if not body:
        raise V2Error("the body is empty; send a JSON inference request")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise V2Error(f"the inference request is not valid JSON: {error}") from None
    if not isinstance(doc, dict):
        raise V2Error("the inference request must be a JSON object with 'inputs'")

    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise V2Error("'id' must be a string")
    parameters = _parameters(doc.get("parameters"), "request 'parameters'")
    if parameters.get("sequence_id") not in (None, 0, "") or parameters.get("sequence_start") \
            or parameters.get("sequence_end"):
        raise V2Error(
            "the served model is not a sequence model: a request with a sequence_id (or "
            "sequence_start/sequence_end) cannot be honoured; send it without (Triton answers "
            "the same for a model without sequence batching)"
        )
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise V2Error("'inputs' must be a non-empty list of input tensors")
    offset = 0
    inputs: list[InferInput] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_inputs):
        tensor, offset = _decode_input(raw, index, binary, offset)
        if tensor.name in seen:
            raise V2Error(f"input {tensor.name!r} is given twice")
        seen.add(tensor.name)
        inputs.append(tensor)
    if offset != len(binary):
        raise V2Error(
            f"the binary part of the body has {len(binary)} bytes but the inputs' "
            f"binary_data_size add up to {offset}"
        )
    outputs: list[RequestedOutput] | None = None
    if "outputs" in doc and doc["outputs"] is not None:
        raw_outputs = doc["outputs"]
        if not isinstance(raw_outputs, list):
            raise V2Error("'outputs' must be a list of {\"name\": ...} objects")
        outputs = []
        for index, raw in enumerate(raw_outputs):
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise V2Error(f"outputs[{index}] must be an object with a string 'name'")
            if any(o.name == raw["name"] for o in outputs):
                raise V2Error(f"output {raw['name']!r} is requested twice")
            out_params = _parameters(raw.get("parameters"), f"output {raw['name']!r} parameters")
            flag = out_params.get("binary_data")
            if flag is not None and not isinstance(flag, bool):
                raise V2Error(f"output {raw['name']!r}: parameters.binary_data must be true or false")
            outputs.append(RequestedOutput(raw["name"], flag, out_params))
    return InferRequest(request_id, inputs, outputs, parameters)


def _parameters(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise V2Error(f"{what} must be a JSON object")
    return value


def _decode_input(raw: Any, index: int, binary: bytes, offset: int) -> tuple[InferInput, int]:
    if not isinstance(raw, dict):
        raise V2Error(f"inputs[{index}] must be an object with name, shape, datatype and data")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise V2Error(f"inputs[{index}] has no 'name'")
    what = f"input {name!r}"
    datatype = datatypes.get(raw.get("datatype"))
    if datatype is None:
        raise V2Error(
            f"{what}: unknown datatype {raw.get('datatype')!r}; "
            f"use one of {', '.join(datatypes.names())}"
        )
    shape = _shape(raw.get("shape"), what)
    count = math.prod(shape)
    parameters = _parameters(raw.get("parameters"), f"{what} parameters")
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise V2Error(f"{what}: binary_data_size must be a non-negative integer")
        if "data" in raw:
            raise V2Error(f"{what} has both 'data' and binary_data_size; send one")
        if offset + size > len(binary):
            raise V2Error(
                f"{what}: binary_data_size {size} goes past the end of the binary data "
                f"({len(binary) - offset} bytes left)"
            )
        flat = _from_binary(binary[offset : offset + size], datatype, count, what)
        offset += size
    else:
        if "data" not in raw:
            raise V2Error(f"{what} has no 'data' (and no binary_data_size)")
        flat = _from_json(raw["data"], datatype, what)
    if flat.size != count:
        raise V2Error(
            f"{what}: shape {shape} holds {count} element(s) but the data has {flat.size}"
        )
    try:
        data = flat.reshape(shape)
    except ValueError as error:  # zero elements, but dimensions too large to hold
        raise V2Error(f"{what}: shape {shape} cannot be held in memory ({error})") from None
    return InferInput(name, datatype.name, tuple(shape), data, parameters), offset


def _shape(shape: Any, what: str) -> list[int]:
    """A tensor's ``shape``: at most :data:`MAX_DIMENSIONS` non-negative integers, each and
    the product of the non-zero ones below 2**63 (what numpy can index)."""
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise V2Error(f"{what}: 'shape' must be a list of non-negative integers, got {shape!r}")
    if len(shape) > MAX_DIMENSIONS:
        raise V2Error(f"{what}: shape has {len(shape)} dimensions; at most {MAX_DIMENSIONS} are possible")
    if math.prod(d for d in shape if d) > MAX_ELEMENTS:
        raise V2Error(f"{what}: shape {shape} is too large: its dimensions multiply past 2**63 - 1")
    return shape


def _from_binary(raw: bytes, datatype: Datatype, count: int, what: str) -> np.ndarray[Any, Any]:
    if datatype.itemsize is None:  # BYTES
        items: list[bytes] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise V2Error(f"{what}: BYTES data ends inside an element's 4-byte length")
            (length,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + length > len(raw):
                raise V2Error(f"{what}: a BYTES element of {length} bytes goes past the data's end")
            items.append(raw[pos : pos + length])
            pos += length
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array
    if len(raw) != count * datatype.itemsize:
        raise V2Error(
            f"{what}: {datatype.name} data of shape holding {count} element(s) needs "
            f"{count * datatype.itemsize} bytes, got {len(raw)}"
        )
    array = np.frombuffer(raw, dtype=datatype.wire_dtype)
    return array.astype(datatype.dtype, copy=False) if array.dtype != datatype.dtype else array


def _flatten(value: Any) -> list[Any]:
    out: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _depth(value: Any) -> int:
    """How deep lists nest in ``value`` (0 for a scalar), without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, list):
            if level + 1 > deepest:
                deepest = level + 1
                if deepest > MAX_DIMENSIONS:
                    break
            stack.extend((child, level + 1) for child in item)
    return deepest


def _from_json(data: Any, datatype: Datatype, what: str) -> np.ndarray[Any, Any]:
    if not isinstance(data, list):
        data = [data]
    if datatype.json_kind == "str":
        flat = _flatten(data)
        items = []
        for i, item in enumerate(flat):
            if not isinstance(item, str):
                raise V2Error(f"{what}: BYTES element {i} must be a string, got {_kind(item)}")
            items.append(item.encode())
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array
    try:
        array = np.asarray(data)
    except ValueError:  # ragged or too deep: flatten it and let the shape check decide
        if _depth(data) > MAX_DIMENSIONS:
            raise V2Error(
                f"{what}: 'data' nests lists more than {MAX_DIMENSIONS} levels deep; a tensor has "
                f"at most {MAX_DIMENSIONS} dimensions (send it flat, in row-major order)"
            ) from None
        array = np.asarray(_flatten(data), dtype=object)
    array = array.ravel()
    if array.size == 0:  # no element: nothing to check, whatever numpy guessed
        return np.empty(0, dtype=datatype.dtype)
    kind = array.dtype.kind
    ok = {
        "bool": kind == "b",
        "int": kind in "iu",
        "float": kind in "iuf",
    }[datatype.json_kind]
    if not ok and datatype.json_kind == "int" and kind in "fO":
        # ints beyond int64 (UINT64) make numpy pick float or object: check them one by one
        flat = _flatten(data)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
            info = np.iinfo(datatype.dtype)
            bad = next((v for v in flat if not info.min <= v <= info.max), None)
            if bad is not None:
                raise V2Error(f"{what}: {bad} is out of range for {datatype.name}")
            return np.array(flat, dtype=datatype.dtype)
    if not ok:
        _name_bad_element(_flatten(data), datatype, what)
    if datatype.json_kind == "int" and array.size:
        info = np.iinfo(datatype.dtype)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise V2Error(f"{what}: {bad} is out of range for {datatype.name}")
    if datatype.json_kind == "float" and array.size:
        with np.errstate(over="ignore"):
            converted = array.astype(datatype.dtype)
        if np.isinf(converted).any():  # JSON has no infinity: numpy made it from a float too large
            bad = array[np.isinf(converted)][0]
            raise V2Error(f"{what}: {bad} is out of range for {datatype.name}")
        return converted
    return array.astype(datatype.dtype)


def _name_bad_element(flat: list[Any], datatype: Datatype, what: str) -> None:
    expected = {"bool": "true or false", "int": "an integer", "float": "a number"}[datatype.json_kind]
    for i, item in enumerate(flat):
        good = {
            "bool": isinstance(item, bool),
            "int": isinstance(item, int) and not isinstance(item, bool),
            "float": isinstance(item, (int, float)) and not isinstance(item, bool),
        }[datatype.json_kind]
        if not good:
            raise V2Error(f"{what}: {datatype.name} element {i} must be {expected}, got {_kind(item)}")
    raise V2Error(f"{what}: data is not {datatype.name}")


def _kind(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


# ---------------------------------------------------------------------- writing


def encode_response(header: dict[str, Any], outputs: list[tuple[OutputTensor, bool]]) -> tuple[bytes, int | None]:
    """The response body and, when some output is binary, the JSON header's length."""
    chunks: list[bytes] = []
    described = []
    for tensor, binary in outputs:
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        parameters = dict(tensor.parameters)
        if binary:
            raw = to_binary(tensor)
            parameters["binary_data_size"] = len(raw)
            chunks.append(raw)
        else:
            entry["data"] = to_json(tensor)
        if parameters:
            entry["parameters"] = parameters
        described.append(entry)
    body = orjson.dumps({**header, "outputs": described}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return body, None
    return body + b"".join(chunks), len(body)


def to_binary(tensor: OutputTensor) -> bytes:
    datatype = datatypes.DATATYPES[tensor.datatype]
    flat = tensor.data.ravel()
    if datatype.itemsize is not None:
        return np.ascontiguousarray(flat, dtype=datatype.wire_dtype).tobytes()
    parts = []
    for item in flat.tolist():
        raw = as_bytes(item)
        parts.append(struct.pack("<I", len(raw)))
        parts.append(raw)
    return b"".join(parts)


def to_json(tensor: OutputTensor) -> list[Any]:
    flat = tensor.data.ravel()
    if tensor.datatype != "BYTES":
        if tensor.datatype == "FP16":
            flat = flat.astype(np.float32)
        values: list[Any] = flat.tolist()
        if tensor.datatype in ("FP16", "FP32", "FP64") and not np.isfinite(flat).all():
            raise V2Error(
                f"output {tensor.name!r} holds NaN or infinity, which JSON cannot carry; "
                f"request it with parameters.binary_data = true"
            )
        return values
    texts = []
    for item in flat.tolist():
        if isinstance(item, bytes):
            try:
                texts.append(item.decode())
            except UnicodeDecodeError:
                raise V2Error(
                    f"output {tensor.name!r} holds bytes that are not UTF-8 text; request it "
                    f"with parameters.binary_data = true"
                ) from None
        else:
            texts.append(item if isinstance(item, str) else str(item))
    return texts


def as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    return str(item).encode()


__all__ = [
    "HEADER_LENGTH",
    "InferInput",
    "InferRequest",
    "OutputTensor",
    "RequestedOutput",
    "V2Error",
    "decode_request",
    "encode_response",
]
