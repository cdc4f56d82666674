"""How a V2 request becomes the ``data`` of ``architecture_predict``, and its result V2 outputs.

Three kinds of model, chosen once when the routes are built:

* :class:`NativeAdapter` - the model object speaks V2 itself (the *V2 model protocol*):
  it has ``v2_metadata()``, ``v2_data(inputs, parameters, outputs)`` and
  ``v2_outputs(result)``. The MLComponent plugin's model does.
* :class:`TensorAdapter` - every predict argument is a declared tensor (ONNX models): each
  input tensor is fed by name, checked against the declared datatype and shape.
* :class:`RowsAdapter` - a Python model (pickle): the rows argument comes from the single
  input tensor (or the input named like it), the other arguments from request
  ``parameters`` or from inputs named like them.

The result (whatever the configured transformer returned) becomes outputs: a dict gives one
output per key, anything else one output named after the predict method.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from core_protocol_v2 import datatypes
from core_protocol_v2.codec import (
    RESERVED_TENSOR_PARAMETERS,
    InferInput,
    InferRequest,
    OutputTensor,
    V2Error,
)

if TYPE_CHECKING:
    from core.analysis import ModelInterface
    from core.http import Service

#: ONNX element types (``tensor(float)``) as numpy dtype names.
_ONNX_TYPES = {
    "tensor(bool)": "bool", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(int8)": "int8",
    "tensor(int16)": "int16", "tensor(int32)": "int32", "tensor(int64)": "int64",
    "tensor(float16)": "float16", "tensor(float)": "float32", "tensor(double)": "float64",
    "tensor(string)": "string",
}


class V2Model(Protocol):
    """The V2 model protocol a model object may implement to be served natively."""

    def v2_metadata(self) -> dict[str, Any]:
        """``{"inputs": [{"name", "datatype", "shape"}], "outputs": [...]}``; optionally
        ``"platform"``."""

    def v2_data(self, inputs: list[dict[str, Any]], parameters: dict[str, Any],
                outputs: list[str] | None) -> dict[str, Any]:
        """Turn decoded inputs (``name``, ``datatype``, ``shape``, ``data`` - a numpy
        array, ``BYTES`` as :class:`bytes` - and ``parameters``) into the ``data`` that
        ``architecture_predict`` passes to ``predict``. Raise ``ValueError`` (or a
        ``core.errors.RequestError``) for a bad request."""

    def v2_outputs(self, result: Any) -> list[dict[str, Any]]:
        """Turn the prediction result into outputs (``name``, ``datatype``, ``data``: an
        array or nested list, optionally ``shape``)."""


def is_v2_model(model: Any) -> bool:
    return all(callable(getattr(model, name, None)) for name in ("v2_metadata", "v2_data", "v2_outputs"))


def _onnx_outputs(model: Any) -> list[tuple[str, str, list[int]]] | None:
    """Declared outputs of an ONNX-backed model: ``(name, dtype, shape)`` or ``None``."""
    declared = getattr(model, "output_tensors", None)
    if isinstance(declared, dict):
        result = []
        for name, tensor in declared.items():
            shape = [-1 if d is None else int(d) for d in (getattr(tensor, "shape", None) or ())]
            result.append((str(name), str(getattr(tensor, "dtype", "float32")), shape))
        return result
    candidates = [model, *(getattr(model, a, None) for a in ("session", "_session", "sess", "model"))]
    for candidate in candidates:
        get_outputs = getattr(candidate, "get_outputs", None)
        if not callable(get_outputs):
            continue
        try:
            outputs = list(get_outputs())
        except Exception:
            continue
        return [
            (
                o.name,
                _ONNX_TYPES.get(getattr(o, "type", ""), "float32"),
                [d if isinstance(d, int) else -1 for d in (getattr(o, "shape", None) or [])],
            )
            for o in outputs
        ]
    return None


class Adapter:
    """Common part: metadata, output selection and result conversion."""

    platform = "core"

    def __init__(self, service: Service) -> None:
        self.service = service
        self.model = service.model
        self.interface: ModelInterface = service.interface
        self.default_output = service.conf.predict_method_name or "predict"
        self.declared_outputs = _onnx_outputs(self.model)

    def metadata(self) -> dict[str, Any]:
        return {"platform": self.platform, "inputs": self.input_metadata(), "outputs": self.output_metadata()}

    def input_metadata(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def output_metadata(self) -> list[dict[str, Any]]:
        if self.declared_outputs:
            return [
                {"name": n, "datatype": datatypes.from_numpy(d), "shape": s}
                for n, d, s in self.declared_outputs
            ]
        return [{"name": self.default_output, "datatype": self._default_datatype(), "shape": [-1]}]

    def _default_datatype(self) -> str:
        dtype = self.service.conf.dtype_for_predict
        return datatypes.from_numpy(dtype) if dtype else "FP32"

    def data(self, request: InferRequest) -> dict[str, Any]:
        raise NotImplementedError

    def outputs(self, result: Any) -> list[OutputTensor]:
        declared = {n: d for n, d, _ in self.declared_outputs or ()}
        if isinstance(result, dict):
            items = list(result.items())
        elif isinstance(result, (list, tuple)) and self.declared_outputs and \
                len(result) == len(self.declared_outputs) and len(self.declared_outputs) > 1:
            items = [(n, r) for (n, _, _), r in zip(self.declared_outputs, result)]
        else:
            items = [(self.declared_outputs[0][0] if len(self.declared_outputs or ()) == 1
                      else self.default_output, result)]
        return [to_output(str(name), value, declared.get(str(name))) for name, value in items]


def to_output(name: str, value: Any, dtype: str | None = None, datatype: str | None = None) -> OutputTensor:
    """A result value (array, nested list, scalar) as an output tensor."""
    if datatype is None and dtype is not None:
        datatype = datatypes.from_numpy(dtype)
    if datatype is not None and datatype not in datatypes.DATATYPES:
        raise V2Error(f"output {name!r}: unknown datatype {datatype!r}", 500)
    try:
        if datatype == "BYTES":
            array = _object_array(value)
        elif datatype is not None:
            array = np.asarray(_none_to_nan(value), dtype=datatypes.to_numpy(datatype))
        else:
            array = np.asarray(value)
            if array.dtype.kind == "O":
                try:
                    array = np.asarray(_none_to_nan(value), dtype=np.float64)
                except (TypeError, ValueError):
                    array = _object_array(value)
            datatype = datatypes.from_numpy(array.dtype)
            if array.dtype.kind in "SU":
                array = array.astype(object)
    except ValueError as error:
        raise V2Error(
            f"output {name!r} cannot be sent as a tensor ({error}); return arrays of one shape", 500
        ) from None
    return OutputTensor(name, datatype, array)


def _object_array(value: Any) -> np.ndarray[Any, Any]:
    if isinstance(value, np.ndarray):
        return value.astype(object)
    probe = np.asarray(value, dtype=object)
    return probe


def _none_to_nan(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, list):
        return [_none_to_nan(v) for v in value]
    return value


def _check_tensor(tensor: InferInput, dtype: str, shape: tuple[int | None, ...] | None) -> np.ndarray[Any, Any]:
    expected = datatypes.from_numpy(dtype)
    if tensor.datatype != expected:
        raise V2Error(f"input {tensor.name!r} has datatype {tensor.datatype}; the model expects {expected}")
    if shape is not None:
        text = "[" + ", ".join("-1" if d is None else str(d) for d in shape) + "]"
        if len(tensor.shape) != len(shape) or any(
            want is not None and want != got for want, got in zip(shape, tensor.shape)
        ):
            raise V2Error(
                f"input {tensor.name!r} has shape {list(tensor.shape)}; the model expects {text}"
            )
    if tensor.datatype == "BYTES":
        return decode_text(tensor.data)
    return tensor.data


def decode_text(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """BYTES elements as :class:`str` (UTF-8), keeping non-text elements as bytes."""
    out = np.empty(array.shape, dtype=object)
    flat_in, flat_out = array.ravel(), out.ravel()
    for i, item in enumerate(flat_in):
        if isinstance(item, bytes):
            with contextlib.suppress(UnicodeDecodeError):
                item = item.decode()
        flat_out[i] = item
    return out


class TensorAdapter(Adapter):
    """ONNX-style models: every argument a declared tensor."""

    platform = "onnxruntime_onnx"

    def __init__(self, service: Service) -> None:
        super().__init__(service)
        # ONNX input names that are not Python identifiers (``input:0``) reach predict under
        # another argument name; V2 clients use the graph's names.
        renamed = {}
        for info in getattr(self.model, "inputs", None) or ():
            name, argument = getattr(info, "name", None), getattr(info, "argument", None)
            if isinstance(name, str) and isinstance(argument, str):
                renamed[argument] = name
        self.v2_names = {a.name: renamed.get(a.name, a.name) for a in self.interface.arguments}

    def input_metadata(self) -> list[dict[str, Any]]:
        result = []
        for arg in self.interface.arguments:
            tensor = arg.tensor
            assert tensor is not None
            shape = [-1 if d is None else int(d) for d in tensor.shape] if tensor.shape is not None else [-1]
            result.append({"name": self.v2_names[arg.name], "datatype": datatypes.from_numpy(tensor.dtype),
                           "shape": shape})
        return result

    def data(self, request: InferRequest) -> dict[str, Any]:
        arguments = {self.v2_names[a.name]: a for a in self.interface.arguments}
        by_name = {t.name: t for t in request.inputs}
        unknown = [n for n in by_name if n not in arguments]
        if unknown:
            raise V2Error(
                f"unknown input(s) {', '.join(map(repr, unknown))}; the model takes "
                f"{', '.join(map(repr, arguments))}"
            )
        missing = [n for n, a in arguments.items() if a.required and n not in by_name]
        if missing:
            raise V2Error(f"missing input(s) {', '.join(map(repr, missing))}")
        parameters = request.model_parameters()
        if parameters:
            raise V2Error(
                f"unknown request parameter(s) {', '.join(map(repr, parameters))}; "
                f"this model takes none"
            )
        data = {}
        for name, tensor in by_name.items():
            declared = arguments[name].tensor
            assert declared is not None
            data[arguments[name].name] = _check_tensor(tensor, declared.dtype, declared.shape)
        return data


class RowsAdapter(Adapter):
    """Python models: rows from an input tensor, other arguments from parameters."""

    platform = "python"

    def input_metadata(self) -> list[dict[str, Any]]:
        rows = self.interface.rows
        result = []
        if rows is not None:
            result.append({"name": rows.name, "datatype": self._default_datatype(), "shape": [-1, -1]})
        for arg in self.interface.arguments:
            if arg.is_rows or arg.kind != "array":
                continue
            result.append({"name": arg.name, "datatype": self._default_datatype(), "shape": [-1]})
        return result

    def data(self, request: InferRequest) -> dict[str, Any]:
        interface = self.interface
        arguments = {a.name: a for a in interface.arguments}
        rows = interface.rows
        values: dict[str, Any] = {}
        extra_tensors: dict[str, Any] = {}
        inputs = list(request.inputs)
        for tensor in inputs:
            if tensor.name in arguments:
                values[tensor.name] = tensor
        if rows is not None and rows.name not in values:
            unnamed = [t for t in inputs if t.name not in arguments]
            if len(unnamed) == 1:
                values[rows.name] = unnamed[0]
            elif unnamed:
                raise V2Error(
                    f"input(s) {', '.join(repr(t.name) for t in unnamed)} match no argument of "
                    f"{self.service.conf.predict_method_name}(); name them "
                    f"{', '.join(map(repr, arguments))}, or send one input for the rows"
                )
        else:
            unknown = [t.name for t in inputs if t.name not in arguments]
            if unknown:
                raise V2Error(
                    f"unknown input(s) {', '.join(map(repr, unknown))}; the model takes "
                    f"{', '.join(map(repr, arguments))}"
                )
        body: dict[str, Any] = {}
        for name, tensor in values.items():
            array = decode_text(tensor.data) if tensor.datatype == "BYTES" else tensor.data
            if name == (rows.name if rows else None) or arguments[name].kind == "array":
                extra_tensors[name] = array
                body[name] = []
            else:
                body[name] = array.item() if array.size == 1 else array.tolist()
                if isinstance(body[name], bytes):
                    body[name] = body[name].decode(errors="replace")
        for key, value in request.model_parameters().items():
            if key not in arguments:
                raise V2Error(
                    f"unknown request parameter {key!r}; {self.service.conf.predict_method_name}() takes "
                    f"{', '.join(map(repr, arguments))}"
                )
            if key in body:
                raise V2Error(f"{key!r} is given both as an input and as a parameter")
            body[key] = value
        if rows is not None and rows.name not in body:
            raise V2Error(f"missing input for the rows argument {rows.name!r}")
        data = self.service.validate(body)  # the scalar arguments, checked like POST /predict
        data.update(extra_tensors)
        return data


class NativeAdapter(Adapter):
    """A model object that implements the V2 model protocol."""

    def __init__(self, service: Service) -> None:
        super().__init__(service)
        meta = self.model.v2_metadata()
        self.platform = str(meta.get("platform", "core"))
        self._meta = meta

    def input_metadata(self) -> list[dict[str, Any]]:
        return list(self._meta.get("inputs", []))

    def output_metadata(self) -> list[dict[str, Any]]:
        return list(self._meta.get("outputs", []))

    def data(self, request: InferRequest) -> dict[str, Any]:
        inputs = [
            {"name": t.name, "datatype": t.datatype, "shape": list(t.shape), "data": t.data,
             "parameters": {k: v for k, v in t.parameters.items() if k not in RESERVED_TENSOR_PARAMETERS}}
            for t in request.inputs
        ]
        outputs = [o.name for o in request.outputs] if request.outputs is not None else None
        try:
            return self.model.v2_data(inputs, request.model_parameters(), outputs)  # type: ignore[no-any-return]
        except (ValueError, TypeError, KeyError) as error:
            raise V2Error(str(error)) from None

    def outputs(self, result: Any) -> list[OutputTensor]:
        tensors = []
        for out in self.model.v2_outputs(result):
            tensor = to_output(str(out["name"]), out.get("data"), datatype=out.get("datatype"))
            shape = out.get("shape")
            if shape is not None and list(tensor.data.shape) != list(shape):
                try:
                    tensor.data = tensor.data.reshape(shape)
                except ValueError:
                    raise V2Error(
                        f"output {tensor.name!r}: shape {shape} does not fit its "
                        f"{tensor.data.size} element(s)", 500
                    ) from None
            tensor.parameters = dict(out.get("parameters") or {})
            tensors.append(tensor)
        return tensors


def adapter_for(service: Service) -> Adapter:
    """The adapter that fits the served model."""
    if is_v2_model(service.model):
        return NativeAdapter(service)
    interface = service.interface
    if interface.arguments and all(a.tensor is not None for a in interface.arguments):
        return TensorAdapter(service)
    return RowsAdapter(service)

