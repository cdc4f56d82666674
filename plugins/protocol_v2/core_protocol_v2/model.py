"""How a V2 request becomes the ``data`` of ``architecture_predict``, and its result V2 outputs.

Everything known of the model comes from ``service.interface`` (core's documented description
of a model: its arguments, the rows argument, the outputs it declares; docs/plugins.md,
"Describing a model's tensors") or from the V2 model protocol's methods. Three kinds of
model, chosen once when the routes are built:

* :class:`NativeAdapter` - the model object speaks V2 itself (the *V2 model protocol*):
  it has ``v2_metadata()``, ``v2_data(inputs, parameters, outputs)`` and
  ``v2_outputs(result)``. The MLComponent plugin's model does.
* :class:`TensorAdapter` - every predict argument is a declared tensor (ONNX models): each
  input tensor is fed by name, checked against the declared datatype and shape.
* :class:`RowsAdapter` - a Python model (pickle): the rows argument comes from the single
  input tensor (or the input named like it), the other arguments from request
  ``parameters`` or from inputs named like them.

Outputs: a model that declares them (``interface.outputs``) is answered with exactly those,
by name, with their declared datatypes, and its metadata lists them; one that declares none
is answered one output per key of a dict result, or one output named after the predict
method, and its metadata lists no outputs (as MLServer's does for a model without declared
outputs), so that metadata never names an output that inference refuses.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from core.analysis import SEQUENCE_OF_MAPS, Argument, ModelInterface, Outputs, Tensor
from core_protocol_v2 import content_types, datatypes
from core_protocol_v2.codec import (
    RESERVED_TENSOR_PARAMETERS,
    InferInput,
    InferRequest,
    OutputTensor,
    V2Error,
)

if TYPE_CHECKING:
    from core.http import Service

logger = logging.getLogger("core")


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


def dims(shape: tuple[int | None, ...] | None) -> list[int]:
    """A declared shape as V2 metadata writes it: ``-1`` for a dimension of any size, ``[-1]``
    when even the rank is unknown."""
    return [-1 if d is None else int(d) for d in shape] if shape is not None else [-1]


def describe(name: str, tensor: Tensor) -> dict[str, Any]:
    """One declared input or output as V2 metadata: a sequence of maps (ZipMap) is served as
    a ``[rows, keys]`` tensor of its values' datatype."""
    if tensor.kind == SEQUENCE_OF_MAPS:
        return {"name": name, "datatype": datatypes.from_numpy(tensor.dtype), "shape": [-1, -1]}
    return {"name": name, "datatype": datatypes.from_numpy(tensor.dtype), "shape": dims(tensor.shape)}


def model_fault(message: str) -> V2Error:
    """A 500 for a result that does not fit what the model declares, or that no tensor can
    hold: the model's author has to fix it, so it is logged as well as answered."""
    logger.error("V2 inference: %s", message)
    return V2Error(message, 500)


class _Empty:
    """The result of a batch of zero rows (core answers ``[]`` without calling the model)."""


EMPTY = _Empty()


class Adapter:
    """Common part: metadata, output selection and result conversion."""

    platform = "core"

    def __init__(self, service: Service) -> None:
        self.service = service
        self.interface: ModelInterface = service.interface
        self.declared: Outputs | None = service.interface.outputs
        self.default_output = service.conf.predict_method_name or "predict"

    # ------------------------------------------------------------------ metadata

    def metadata(self) -> dict[str, Any]:
        return {"platform": self.platform, "inputs": self.input_metadata(), "outputs": self.output_metadata()}

    def input_metadata(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def output_metadata(self) -> list[dict[str, Any]]:
        """The declared outputs; none when the model declares none (their names and types are
        then only known from a result)."""
        return [describe(name, tensor) for name, tensor in (self.declared or {}).items()]

    def _default_datatype(self) -> str:
        dtype = self.service.conf.dtype_for_predict
        return datatypes.from_numpy(dtype) if dtype else "FP32"

    # ------------------------------------------------------------------ requests

    def data(self, request: InferRequest) -> dict[str, Any]:
        raise NotImplementedError

    def check_outputs(self, request: InferRequest) -> None:
        """Refuse, before predicting, requested outputs the model cannot answer: a content
        type or a protocol extension this server does not know, a name the model does not
        declare."""
        if request.outputs is None:
            return
        names = [o.name for o in request.outputs]
        for wanted in request.outputs:
            content_types.output_content_type(wanted.name, wanted.parameters)
            if "classification" in wanted.parameters:
                raise V2Error(
                    f"output {wanted.name!r}: the classification extension is not supported "
                    f"(this server's extensions: binary_tensor_data)"
                )
        if self.declared is not None:
            unknown = [n for n in names if n not in self.declared]
            if unknown:
                raise V2Error(
                    f"unknown output(s) {', '.join(map(repr, unknown))}; the model's outputs are "
                    f"{', '.join(map(repr, self.declared))}"
                )

    # ------------------------------------------------------------------ results

    def results(self, result: Any) -> dict[str, Any]:
        """The result's values by output name, in the order outputs are answered. Declared
        outputs take their values from a dict result by name, from a tuple or list in order
        (several outputs), or the whole result (one output); a batch of zero rows gives each
        of them zero rows."""
        declared = self.declared
        if declared is None:
            if isinstance(result, dict):
                return {str(name): value for name, value in result.items()}
            return {self.default_output: result}
        if isinstance(result, Mapping):
            return {name: result[name] if name in result else _Missing(name, result) for name in declared}
        if _is_empty(result):
            return {name: EMPTY for name in declared}
        if len(declared) == 1:
            return {next(iter(declared)): result}
        if isinstance(result, (list, tuple)) and len(result) == len(declared):
            return dict(zip(declared, result))
        size = f" of {len(result)}" if isinstance(result, (list, tuple)) else ""
        raise model_fault(
            f"the model declares the outputs {', '.join(map(repr, declared))} but returned "
            f"{type(result).__name__}{size}; return a dict with those keys"
        )

    def output(self, name: str, value: Any, parameters: dict[str, Any]) -> OutputTensor:
        """The output to send for one requested output (``parameters`` its request's: a
        ``content_type`` says how to send it)."""
        content_type = content_types.output_content_type(name, parameters)
        return content_types.encode_output(self.tensor(name, value), content_type)

    def tensor(self, name: str, value: Any) -> OutputTensor:
        """One output's value as a tensor, of its declared datatype when it has one."""
        if isinstance(value, _Missing):
            raise model_fault(
                f"the model declares the output {name!r} but its result has no {name!r} "
                f"(it has {', '.join(map(repr, value.keys)) or 'no key'})"
            )
        tensor = self.declared.get(name) if self.declared is not None else None
        if tensor is None:
            return to_output(name, value)
        if tensor.kind == SEQUENCE_OF_MAPS:
            return maps_to_output(name, value, tensor)
        if value is EMPTY:
            return OutputTensor(name, datatypes.from_numpy(tensor.dtype),
                                np.empty(_zero_rows(tensor.shape), dtype=_numpy_dtype(tensor.dtype)))
        return to_output(name, value, tensor.dtype)


class _Missing:
    """A declared output a dict result does not have (an error only if it is answered)."""

    def __init__(self, name: str, result: Mapping[Any, Any]) -> None:
        self.name = name
        self.keys = [str(k) for k in result]


def _is_empty(result: Any) -> bool:
    return (isinstance(result, (list, tuple)) and not result) or (
        isinstance(result, np.ndarray) and result.size == 0 and result.ndim <= 1)


def _zero_rows(shape: tuple[int | None, ...] | None) -> tuple[int, ...]:
    """A declared shape with zero rows: the first dimension 0, other free dimensions 0."""
    if not shape:
        return (0,)
    return (0, *(0 if d is None else d for d in shape[1:]))


def _numpy_dtype(dtype: str) -> Any:
    return object if dtype in ("string", "str", "object", "bytes") else np.dtype(dtype)


def to_output(name: str, value: Any, dtype: str | None = None, datatype: str | None = None) -> OutputTensor:
    """A result value (array, nested list, scalar) as an output tensor."""
    if datatype is None and dtype is not None:
        datatype = datatypes.from_numpy(dtype)
    if datatype is not None and datatype not in datatypes.DATATYPES:
        raise model_fault(f"output {name!r}: unknown datatype {datatype!r}")
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
    except (TypeError, ValueError) as error:
        raise model_fault(
            f"output {name!r} cannot be sent as a {datatype or 'tensor'} ({error}); return "
            f"arrays of one shape and type") from None
    return OutputTensor(name, datatype, array)


def maps_to_output(name: str, value: Any, tensor: Tensor) -> OutputTensor:
    """A sequence of maps (one ``{key: value}`` per row, as skl2onnx's ZipMap gives
    ``{class: probability}``) as a ``[rows, keys]`` tensor of the values' datatype, the keys
    in the first row's order listed in ``parameters.classes``. Every row must have the same
    keys."""
    dtype = _numpy_dtype(tensor.dtype)
    rows = [] if value is EMPTY else value
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, Mapping) for r in rows):
        raise model_fault(f"output {name!r} is declared a sequence of maps but the model returned "
                      f"{type(rows).__name__}")
    keys = list(rows[0]) if rows else []
    for index, row in enumerate(rows):
        if len(row) != len(keys) or any(k not in row for k in keys):
            raise model_fault(f"output {name!r}: row {index} has the keys {list(row)}, row 0 has "
                          f"{keys}; a tensor needs the same keys in every row")
    try:
        data = np.array([[row[k] for k in keys] for row in rows], dtype=dtype).reshape(len(rows), len(keys))
    except (TypeError, ValueError) as error:
        raise model_fault(f"output {name!r}: the maps' values are not {tensor.dtype}: {error}") from None
    classes: list[Any] = [int(k) if tensor.key_dtype == "int64" else str(k) for k in keys]
    return OutputTensor(name, datatypes.from_numpy(tensor.dtype), data, {"classes": classes})


def _object_array(value: Any) -> np.ndarray[Any, Any]:
    if isinstance(value, np.ndarray):
        return value.astype(object)
    return np.asarray(value, dtype=object)


def _none_to_nan(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, list):
        return [_none_to_nan(v) for v in value]
    return value


def _check_tensor(tensor: InferInput, declared: Tensor) -> np.ndarray[Any, Any]:
    """The input's data for a declared tensor: its datatype and shape checked, strings as
    :class:`str` (ONNX strings are UTF-8: other bytes are a 400)."""
    expected = datatypes.from_numpy(declared.dtype)
    if tensor.datatype != expected:
        raise V2Error(f"input {tensor.name!r} has datatype {tensor.datatype}; the model expects {expected}")
    shape = declared.shape
    if shape is not None and (len(tensor.shape) != len(shape) or any(
            want is not None and want != got for want, got in zip(shape, tensor.shape))):
        raise V2Error(
            f"input {tensor.name!r} has shape {list(tensor.shape)}; the model expects {dims(shape)}"
        )
    return content_types.elements(tensor, text_only=tensor.datatype == "BYTES")


def _one_input(request: InferRequest, content_type: str) -> InferInput:
    """The single input of a request whose content type says it is one tensor."""
    if len(request.inputs) != 1:
        codec = {"np": "NumpyRequestCodec", "str": "StringRequestCodec"}[content_type]
        raise V2Error(
            f"content_type {content_type!r} ({codec}) sends one input; this request has "
            f"{len(request.inputs)}: {', '.join(repr(t.name) for t in request.inputs)}"
        )
    tensor = request.inputs[0]
    if content_type == "str" and tensor.datatype != "BYTES":
        raise V2Error(f"content_type 'str' sends a BYTES input; {tensor.name!r} is {tensor.datatype}")
    return tensor


def _model_parameters(request: InferRequest) -> dict[str, Any]:
    """The request parameters for the model: the protocol's own and ``content_type`` removed."""
    return {k: v for k, v in request.model_parameters().items() if k != "content_type"}


class TensorAdapter(Adapter):
    """ONNX-style models: every argument a declared tensor, fed by the model's names."""

    platform = "onnxruntime_onnx"

    def __init__(self, service: Service) -> None:
        super().__init__(service)
        # The model's own name of each input (ONNX ``input:0`` is the argument ``input_0``).
        self.by_v2_name: dict[str, Argument] = {}
        for arg in self.interface.arguments:
            assert arg.tensor is not None
            self.by_v2_name[arg.tensor.name or arg.name] = arg

    def input_metadata(self) -> list[dict[str, Any]]:
        result = []
        for name, arg in self.by_v2_name.items():
            assert arg.tensor is not None
            result.append(describe(name, arg.tensor))
        return result

    def data(self, request: InferRequest) -> dict[str, Any]:
        self.check_outputs(request)
        content_type = content_types.request_content_type(request.parameters)
        arguments = self.by_v2_name
        by_name = {t.name: t for t in request.inputs}
        if content_type in ("np", "str"):
            tensor = _one_input(request, content_type)
            if tensor.name not in arguments:
                if len(arguments) != 1:
                    raise V2Error(
                        f"content_type {content_type!r}: input {tensor.name!r} is not one of the "
                        f"model's inputs {', '.join(map(repr, arguments))}; name it after one"
                    )
                by_name = {next(iter(arguments)): tensor}
        unknown = [n for n in by_name if n not in arguments]
        if unknown:
            raise V2Error(
                f"unknown input(s) {', '.join(map(repr, unknown))}; the model takes "
                f"{', '.join(map(repr, arguments))}"
            )
        missing = [n for n, a in arguments.items() if a.required and n not in by_name]
        if missing:
            raise V2Error(f"missing input(s) {', '.join(map(repr, missing))}")
        parameters = _model_parameters(request)
        if parameters:
            raise V2Error(
                f"unknown request parameter(s) {', '.join(map(repr, parameters))}; "
                f"this model takes none"
            )
        data = {}
        for name, tensor in by_name.items():
            declared = arguments[name].tensor
            assert declared is not None
            data[arguments[name].name] = _check_tensor(tensor, declared)
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
        self.check_outputs(request)
        interface = self.interface
        arguments = {a.name: a for a in interface.arguments}
        rows = interface.rows
        content_type = content_types.request_content_type(request.parameters)
        body: dict[str, Any] = {}
        tensors: dict[str, Any] = {}  # array arguments, passed on without validation
        if content_type == "pd":
            if rows is None:
                raise V2Error("content_type 'pd' sends the rows as columns; this model takes no rows")
            records, array = self._rows_from_columns(request.inputs, rows)
            body[rows.name] = records if records is not None else []
            if array is not None:
                tensors[rows.name] = array
        else:
            for name, tensor in self._match_inputs(request, arguments, content_type).items():
                is_array = name == (rows.name if rows else None) or arguments[name].kind == "array"
                text = content_type == "str" or (not is_array and tensor.datatype == "BYTES")
                values = content_types.elements(tensor, text_only=text)
                if is_array:  # StringRequestCodec's strings are a flat list
                    tensors[name] = values.ravel() if content_type == "str" else values
                    body[name] = []
                else:
                    body[name] = values.item() if values.size == 1 else values.tolist()
        for key, value in _model_parameters(request).items():
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
        data.update(tensors)
        return data

    def _match_inputs(self, request: InferRequest, arguments: dict[str, Argument],
                      content_type: str | None) -> dict[str, InferInput]:
        """Inputs by the argument they feed: by name, or the single other input feeds the rows
        (``np`` and ``str``: the request's one input is the rows, whatever its name)."""
        rows = self.interface.rows
        if content_type in ("np", "str"):
            if rows is None:
                raise V2Error(f"content_type {content_type!r} sends the rows; this model takes no rows")
            return {rows.name: _one_input(request, content_type)}
        values = {t.name: t for t in request.inputs if t.name in arguments}
        unnamed = [t for t in request.inputs if t.name not in arguments]
        if rows is not None and rows.name not in values and len(unnamed) == 1:
            values[rows.name] = unnamed[0]
        elif unnamed:
            raise V2Error(
                f"unknown input(s) {', '.join(repr(t.name) for t in unnamed)}; "
                f"{self.service.conf.predict_method_name}() takes {', '.join(map(repr, arguments))}"
                + ("" if rows is None or rows.name in values else ", or send one input for the rows")
            )
        return values

    def _rows_from_columns(self, inputs: list[InferInput],
                           rows: Argument) -> tuple[list[dict[str, Any]] | None, Any]:
        """``content_type = "pd"`` (PandasCodec): each input is a column of N values. With the
        rows' columns known (the ``columns`` setting, or the model's ``feature_names_in_``)
        the rows are records, validated like ``/predict``'s dict rows: ``(records, None)``;
        otherwise the columns side by side in request order, as one array: ``(None, array)``."""
        columns: list[tuple[str, np.ndarray[Any, Any]]] = []
        for tensor in inputs:
            values = content_types.elements(tensor, text_only=False)
            if values.ndim == 0 or (values.ndim == 2 and values.shape[1] != 1) or values.ndim > 2:
                raise V2Error(
                    f"content_type 'pd': input {tensor.name!r} is a column and needs shape [N] or "
                    f"[N, 1], got {list(tensor.shape)}"
                )
            columns.append((tensor.name, values.reshape(-1)))
        lengths = {len(values) for _, values in columns}
        if len(lengths) > 1:
            raise V2Error(
                "content_type 'pd': the columns have different lengths: "
                + ", ".join(f"{name} {len(values)}" for name, values in columns)
            )
        if rows.columns:
            lists = [(name, values.tolist()) for name, values in columns]
            count = len(lists[0][1]) if lists else 0
            return [{name: values[i] for name, values in lists} for i in range(count)], None
        if not columns:
            return None, np.empty((0, 0))
        if any(values.dtype.kind == "O" for _, values in columns):
            return None, np.stack([values.astype(object) for _, values in columns], axis=1)
        return None, np.column_stack([values for _, values in columns])


class NativeAdapter(Adapter):
    """A model object that implements the V2 model protocol."""

    def __init__(self, service: Service) -> None:
        super().__init__(service)
        self.model = service.model
        meta = self.model.v2_metadata()
        self.platform = str(meta.get("platform", "core"))
        self._meta = meta

    def input_metadata(self) -> list[dict[str, Any]]:
        return list(self._meta.get("inputs", []))

    def output_metadata(self) -> list[dict[str, Any]]:
        return list(self._meta.get("outputs", []))

    def data(self, request: InferRequest) -> dict[str, Any]:
        self.check_outputs(request)
        inputs = [
            {"name": t.name, "datatype": t.datatype, "shape": list(t.shape), "data": t.data,
             "parameters": {k: v for k, v in t.parameters.items() if k not in RESERVED_TENSOR_PARAMETERS}}
            for t in request.inputs
        ]
        outputs = [o.name for o in request.outputs] if request.outputs is not None else None
        try:
            data: dict[str, Any] = self.model.v2_data(inputs, request.model_parameters(), outputs)
        except (ValueError, TypeError, KeyError) as error:
            raise V2Error(str(error)) from None
        return data

    def results(self, result: Any) -> dict[str, Any]:
        tensors = {}
        for out in self.model.v2_outputs(result):
            tensor = to_output(str(out["name"]), out.get("data"), datatype=out.get("datatype"))
            shape = out.get("shape")
            if shape is not None and list(tensor.data.shape) != list(shape):
                try:
                    tensor.data = tensor.data.reshape(shape)
                except ValueError:
                    raise model_fault(
                        f"output {tensor.name!r}: shape {shape} does not fit its "
                        f"{tensor.data.size} element(s)") from None
            tensor.parameters = dict(out.get("parameters") or {})
            tensors[tensor.name] = tensor
        return tensors

    def tensor(self, name: str, value: Any) -> OutputTensor:
        """The model's own output as it made it (its parameters are the model's too)."""
        assert isinstance(value, OutputTensor)
        return value


def adapter_for(service: Service) -> Adapter:
    """The adapter that fits the served model."""
    if is_v2_model(service.model):
        return NativeAdapter(service)
    interface = service.interface
    if interface.arguments and all(a.tensor is not None for a in interface.arguments):
        return TensorAdapter(service)
    return RowsAdapter(service)
