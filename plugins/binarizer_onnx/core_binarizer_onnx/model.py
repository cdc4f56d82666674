"""``OnnxModel``: an ``onnxruntime.InferenceSession`` with a ``predict`` that core can serve.

``predict`` takes every input of the model by name and returns every output by name. Its
signature (``inspect.signature(model.predict)``) has one parameter per ONNX input, annotated
with :class:`core.analysis.Tensor` (dtype and shape), so that core's model analysis builds
the request schema from the model itself.
"""

from __future__ import annotations

import inspect
import keyword
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
from core.analysis import Tensor

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
        """The :class:`core.analysis.Tensor` annotation, or ``None`` for non-tensor types."""
        return Tensor(dtype=self.dtype, shape=self.shape) if self.dtype is not None else None

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


def _signature(inputs: Sequence[TensorInfo]) -> inspect.Signature:
    parameters = [
        inspect.Parameter(
            info.argument,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=info.tensor if info.tensor is not None else inspect.Parameter.empty,
        )
        for info in inputs
    ]
    return inspect.Signature(parameters, return_annotation=dict)


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
        signature = _signature(inputs)

        arguments = frozenset(info.argument for info in inputs)

        def predict(*args: Any, **kwargs: Any) -> dict[str, Any]:
            if args or kwargs.keys() != arguments:  # the common case, all by name, skips bind
                kwargs = signature.bind(*args, **kwargs).arguments
            feeds = {info.name: _feed(kwargs[info.argument], info) for info in inputs}
            return dict(zip(output_names, session.run(None, feeds)))

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
