"""``OnnxModel``: an ``onnxruntime.InferenceSession`` with a ``predict`` that core can serve.

``predict`` takes every input of the model by name and returns every output by name. Its
signature (``inspect.signature(model.predict)``) describes the model the documented way
(docs/plugins.md, "Describing a model's tensors"): one parameter per ONNX input, annotated
with a :class:`core.Tensor` (dtype, shape, and the graph's name when it is not a Python
identifier), and a return annotation :class:`core.Outputs` naming every output. So core's
model analysis builds the request schema from the model itself, and protocols (V2) read
inputs and outputs from the analysed interface (``service.interface``) alone.
"""

from __future__ import annotations

import inspect
import keyword
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
from core.analysis import SEQUENCE_OF_MAPS, Outputs, Tensor

#: ONNX element types -> the dtype names core and numpy use.
ONNX_DTYPES: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}

#: ``seq(map(K, tensor(V)))``: one map per row, what skl2onnx's ZipMap returns.
_SEQUENCE_OF_MAPS = re.compile(r"^seq\(map\((\w+),\s*(tensor\(\w+\))\)\)$")
#: The key types of an ONNX map, as core names them.
_MAP_KEYS = {"string": "string", "int64": "int64"}

logger = logging.getLogger("core")


@attrs.frozen
class TensorInfo:
    """One input or output of an ONNX model.

    :ivar name: the name in the ONNX graph (the key of ``predict``'s result for an output).
    :ivar argument: for an input, the ``predict`` parameter and request field: the ONNX name,
        made a Python identifier when it is not one (``input:0`` -> ``input_0``).
    :ivar dtype: the element type as core names it (``float32``, ``int64``, ``string``...);
        ``None`` for types numpy cannot hold (sequences, maps, bfloat16...).
    :ivar shape: one entry per dimension, ``None`` for a dimension of any size (symbolic,
        like ``batch``); ``None`` when the rank is unknown.
    :ivar onnx_type: the type as onnxruntime reports it, e.g. ``tensor(float)``.
    """

    name: str
    argument: str
    dtype: str | None
    shape: tuple[int | None, ...] | None
    onnx_type: str

    @property
    def tensor(self) -> Tensor | None:
        """The :class:`core.Tensor` that declares this input or output: an array for a
        ``tensor(...)`` type, a sequence of maps for ``seq(map(K, tensor(V)))`` (ZipMap);
        ``None`` for other types (sequences of tensors, bare maps, bfloat16...). ``name`` is
        the graph's name when the argument's differs (``input:0`` -> ``input_0``)."""
        name = self.name if self.name != self.argument else None
        if self.dtype is not None:
            return Tensor(dtype=self.dtype, shape=self.shape, name=name)
        found = _SEQUENCE_OF_MAPS.match(self.onnx_type.replace(" ", ""))
        if found and found.group(1) in _MAP_KEYS and found.group(2) in ONNX_DTYPES:
            return Tensor(dtype=ONNX_DTYPES[found.group(2)], shape=(None,), name=name,
                          kind=SEQUENCE_OF_MAPS, key_dtype=_MAP_KEYS[found.group(1)])
        return None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _shape(shape: Any) -> tuple[int | None, ...] | None:
    if not isinstance(shape, (list, tuple)):
        return None
    return tuple(dim if isinstance(dim, int) and dim >= 0 else None for dim in shape)


def _identifier(name: str, taken: set[str]) -> str:
    result = name if name.isidentifier() else re.sub(r"\W", "_", name)
    if not result or not result.isidentifier():
        result = f"_{result}"
    if keyword.iskeyword(result):
        result = f"{result}_"
    base, index = result, 2
    while result in taken:
        result, index = f"{base}_{index}", index + 1
    taken.add(result)
    return result


def describe(node_args: Sequence[Any]) -> tuple[TensorInfo, ...]:
    """TensorInfo for each of ``session.get_inputs()`` or ``session.get_outputs()``."""
    taken: set[str] = set()
    return tuple(
        TensorInfo(
            name=arg.name,
            argument=_identifier(arg.name, taken),
            dtype=ONNX_DTYPES.get(arg.type),
            shape=_shape(arg.shape),
            onnx_type=arg.type,
        )
        for arg in node_args
    )


def _feed(value: Any, info: TensorInfo) -> Any:
    """``value`` as the array onnxruntime expects for ``info`` (unchanged when it already is)."""
    if info.dtype is None:
        return value
    if info.dtype == "string":
        if isinstance(value, np.ndarray) and value.dtype.kind in "OU":
            return value
        return np.asarray(value, dtype=object)
    if isinstance(value, np.ndarray) and value.dtype == info.dtype:
        return value
    return np.asarray(value, dtype=info.dtype)


Run = Callable[[list[str], dict[str, Any], Any], list[Any]]


def session_run(session: Any, inputs: Sequence[TensorInfo]) -> Run:
    """The ``run(output_names, feeds, run_options)`` that ``predict`` calls.

    ``InferenceSession.run`` is a Python wrapper around the compiled session's ``run``
    (``session._sess``) that checks, on every call, what ``predict`` already guarantees: every
    input is fed (``predict`` feeds them all), no feed is an ``OrtValue`` (every typed input is
    fed a numpy array), no WebGPU graph is being replayed, and it retries on the CPU when
    another execution provider fails. On a CPU-only session whose inputs all have a dtype,
    none of that can happen, and ``predict`` calls the compiled ``run`` directly: the same
    call, about 3 us less per prediction (the compiled call still checks names, types and
    shapes). Any other session keeps the wrapper.
    """
    compiled = getattr(session, "_sess", None)
    if (
        compiled is not None
        and callable(getattr(compiled, "run", None))
        and list(session.get_providers()) == ["CPUExecutionProvider"]
        and all(info.dtype is not None for info in inputs)
    ):
        return compiled.run
    return session.run


def declared_outputs(outputs: Sequence[TensorInfo]) -> Outputs | None:
    """The :class:`core.Outputs` of the outputs a :class:`core.Tensor` can describe, in the
    graph's order; None when there is none. The others are still in ``predict``'s result."""
    tensors = [(info.name, info.tensor) for info in outputs]
    described = {name: tensor for name, tensor in tensors if tensor is not None}
    return Outputs(described) if described else None


def _signature(inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> inspect.Signature:
    parameters = [
        inspect.Parameter(
            info.argument,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=info.tensor if info.dtype is not None else inspect.Parameter.empty,
        )
        for info in inputs
    ]
    returns = declared_outputs(outputs)
    return inspect.Signature(parameters, return_annotation=returns if returns is not None else dict)


class OnnxModel:
    """An ONNX model ready to serve.

    :ivar session: the ``onnxruntime.InferenceSession``.
    :ivar inputs: what ``predict`` takes, one :class:`TensorInfo` per ONNX input.
    :ivar outputs: what ``predict`` returns, one :class:`TensorInfo` per ONNX output.
    :ivar predict: ``predict(**inputs) -> {output name: array}``; it feeds every input by
        name (converted with ``np.asarray(value, dtype)`` when it is not already an array of
        the input's dtype) and returns every output by name.
    """

    predict: Callable[..., dict[str, Any]]

    def __init__(self, session: Any, name: str = "model.onnx") -> None:
        self.session = session
        self.name = name
        self.inputs = describe(session.get_inputs())
        self.outputs = describe(session.get_outputs())
        self.predict = self._make_predict()

    def _make_predict(self) -> Callable[..., dict[str, Any]]:
        # The function closes over the session, not over self: no reference cycle.
        session = self.session
        inputs = self.inputs
        output_names = [info.name for info in self.outputs]
        signature = _signature(inputs, self.outputs)
        for info in self.outputs:
            if info.tensor is None:
                logger.warning(
                    "%s: output %r is a %s, which core.Tensor cannot describe: /predict returns "
                    "it, protocols that serve declared tensors (V2) do not", self.name, info.name,
                    info.onnx_type,
                )

        arguments = frozenset(info.argument for info in inputs)
        run = session_run(session, inputs)
        # each input with the numpy dtype an array fed as it is has (None: strings, untyped)
        feeding = [(info, np.dtype(info.dtype) if info.dtype not in (None, "string") else None)
                   for info in inputs]

        def predict(*args: Any, **kwargs: Any) -> dict[str, Any]:
            if args or kwargs.keys() != arguments:  # the common case, all by name, skips bind
                kwargs = signature.bind(*args, **kwargs).arguments
            feeds = {}
            for info, dtype in feeding:
                value = kwargs[info.argument]
                if dtype is None or type(value) is not np.ndarray or value.dtype != dtype:
                    value = _feed(value, info)
                feeds[info.name] = value
            return dict(zip(output_names, run(output_names, feeds, None)))

        predict.__signature__ = signature  # type: ignore[attr-defined]
        predict.__name__ = "predict"
        predict.__qualname__ = "OnnxModel.predict"
        predict.__doc__ = (
            f"Run {self.name}: takes "
            + ", ".join(f"{i.argument} ({i.onnx_type}, shape {i.shape})" for i in inputs)
            + "; returns {"
            + ", ".join(repr(name) for name in output_names)
            + "}."
        )
        return predict

    def __repr__(self) -> str:
        ins = ", ".join(
            f"{i.argument}: {i.dtype or i.onnx_type}{list(i.shape or [])}" for i in self.inputs
        )
        outs = ", ".join(o.name for o in self.outputs)
        return f"<OnnxModel {self.name} ({ins}) -> ({outs})>"
