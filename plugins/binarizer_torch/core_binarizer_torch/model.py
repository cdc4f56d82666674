"""``TorchModel``: a torch module with predict methods that core can analyse and serve.

A ``torch.nn.Module``'s ``__call__`` takes ``(*args, **kwargs)``: core's analysis would see
nothing of what the model takes. So the binarizers hand core this thin wrapper instead. Its
``predict`` and ``__call__`` (pymlup called torch models through ``predict_method_name =
"__call__"``) run the module's ``forward`` and carry forward's own signature: for
``forward(self, x)`` the request is ``{"x": [[...], ...]}``. A module with a ``predict`` method
of its own gets that one called by ``predict``; any other method the module defines (a
TorchScript ``@torch.jit.export`` method, a Python method) is served by its name too.

Every call runs under ``torch.inference_mode()`` (the module is in ``eval()`` mode since it was
loaded) and moves its tensor arguments to the model's device; a numpy array (what core's
default ``numpy`` transformer gives) becomes a tensor first, a float64 one in the module's
floating dtype (float32 for most models: JSON numbers arrive as float64).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from core.analysis import Outputs, Tensor

#: torch dtypes core can declare (numpy names). Others (bfloat16, complex...) are left
#: undeclared: the argument is an array of any dtype.
NUMPY_DTYPES = {
    torch.float16: "float16", torch.float32: "float32", torch.float64: "float64",
    torch.int8: "int8", torch.int16: "int16", torch.int32: "int32", torch.int64: "int64",
    torch.uint8: "uint8", torch.bool: "bool",
}

#: TorchScript argument types (``str(argument.type)``) -> the annotation core analyses.
_SCRIPT_TYPES: dict[str, Any] = {
    "Tensor": torch.Tensor, "float": float, "int": int, "bool": bool, "str": str,
}


def tensor_of(value: Any) -> Tensor | None:
    """The :class:`core.Tensor` of a (fake) tensor's dtype and shape: symbolic dimensions
    (a dynamic batch) are ``None``; ``None`` for a dtype numpy does not have."""
    kind = getattr(value, "dtype", None)
    dtype = NUMPY_DTYPES.get(kind) if isinstance(kind, torch.dtype) else None
    if dtype is None:
        return None
    return Tensor(dtype, tuple(d if type(d) is int else None for d in value.shape))


def floating_dtype(module: Any) -> torch.dtype:
    """The dtype of the module's first floating-point parameter or buffer (torch's default
    dtype, float32, when it has none)."""
    for tensors in (module.parameters, module.buffers):
        try:
            for tensor in tensors():
                if tensor.is_floating_point():
                    return tensor.dtype
        except Exception:  # an exported module without the usual accessors
            continue
    return torch.get_default_dtype()


def python_signature(method: Callable[..., Any]) -> inspect.Signature:
    """A Python method's signature (bound: no ``self``), with string annotations evaluated
    (``from __future__ import annotations``) where they can be."""
    signature = inspect.signature(method)
    try:
        hints = typing.get_type_hints(method)
    except Exception:
        hints = {}
    return signature.replace(parameters=[
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
    ], return_annotation=inspect.Signature.empty)


def script_signature(method: Any) -> inspect.Signature:
    """A TorchScript method's signature, from its schema (``forward(Tensor x, float k=1.)``):
    each argument with its type (``Tensor`` an array, ``float``, ``int``, ``bool``, ``str``,
    ``Optional[...]``) and default."""
    parameters = []
    for argument in method.schema.arguments[1:]:  # the first is self
        annotation = _script_annotation(str(argument.type))
        default = argument.default_value if argument.default_value is not None or \
            _has_default(argument) else inspect.Parameter.empty
        parameters.append(inspect.Parameter(argument.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            annotation=annotation, default=default))
    return inspect.Signature(parameters)


def _has_default(argument: Any) -> bool:
    has = getattr(argument, "has_default_value", None)
    return bool(has()) if callable(has) else False


def _script_annotation(type_name: str) -> Any:
    if type_name.startswith("Optional[") and type_name.endswith("]"):
        inner = _script_annotation(type_name[len("Optional["):-1])
        return inner if inner is inspect.Parameter.empty else typing.Optional[inner]  # noqa: UP045
    if type_name.startswith(("List[", "Tuple[")):
        return list
    if type_name.startswith("Dict["):
        return dict
    return _SCRIPT_TYPES.get(type_name, inspect.Parameter.empty)


def declare(signature: inspect.Signature, inputs: Mapping[str, Tensor]) -> inspect.Signature:
    """``signature`` with the parameters named in ``inputs`` annotated by their Tensor."""
    return signature.replace(parameters=[
        p.replace(annotation=inputs[p.name]) if p.name in inputs else p
        for p in signature.parameters.values()
    ])


class TorchModel:
    """A torch module ready to serve.

    :ivar module: the module (``torch.nn.Module``, a TorchScript module, or an exported
        program's module), in eval mode, on :attr:`device`.
    :ivar device: the ``torch.device`` the module runs on.
    :ivar kind: ``"torchscript"``, ``"exported_program"`` or ``"module"`` (a pickled module,
        or a state_dict loaded into its class).
    :ivar name: the file's name, for logs and errors.
    :ivar predict: the module's own ``predict`` when it has one, else :attr:`forward`.
    :ivar forward: calls the module (``module(...)``, hooks included) with forward's signature.
    """

    predict: Callable[..., Any]
    forward: Callable[..., Any]

    def __init__(self, module: Any, *, device: torch.device, kind: str, name: str,
                 signature: inspect.Signature | None = None, outputs: Outputs | None = None,
                 inputs: Mapping[str, Tensor] | None = None) -> None:
        self.module = module
        self.device = device
        self.kind = kind
        self.name = name
        self.float_dtype = floating_dtype(module)
        self._inputs = dict(inputs or {})
        forward = signature if signature is not None else self._signature("forward")
        self.forward = self._wrap(module, "forward", declare(forward, self._inputs), outputs)
        self.__dict__["__call__"] = self.forward
        own_predict = self._defines("predict")
        self.predict = self.method("predict") if own_predict else self.forward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        """Another method the module defines (not one of ``torch.nn.Module``'s own), served
        the same way: ``predict_method_name = "encode"``."""
        if name.startswith("_") or "module" not in self.__dict__ or not self._defines(name):
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        method = self.method(name)
        self.__dict__[name] = method
        return method

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        names.update(n for n in dir(self.module) if not n.startswith("_") and self._defines(n))
        return sorted(names)

    def method(self, name: str) -> Callable[..., Any]:
        """The module's method ``name``, run under inference mode on the model's device, with
        its own signature (the ``inputs`` setting's tensors declared)."""
        signature = declare(self._signature(name), self._inputs)
        return self._wrap(getattr(self.module, name), name, signature)

    # ------------------------------------------------------------------ internals

    def _defines(self, name: str) -> bool:
        """Whether the module defines a method ``name`` of its own: a TorchScript method, or
        a Python method of a class outside torch (``forward`` of an exported program)."""
        module = self.module
        script = getattr(module, "_c", None)
        if isinstance(module, torch.jit.ScriptModule) and script is not None:
            try:
                return bool(script._has_method(name))
            except Exception:
                return False
        for klass in type(module).__mro__:
            if name in vars(klass):
                return callable(vars(klass)[name]) and not klass.__module__.startswith("torch.")
        return False

    def _signature(self, name: str) -> inspect.Signature:
        method = getattr(self.module, name)
        if isinstance(self.module, torch.jit.ScriptModule) and hasattr(method, "schema"):
            return script_signature(method)
        return python_signature(method)

    def _wrap(self, target: Callable[..., Any], name: str, signature: inspect.Signature,
              outputs: Outputs | None = None) -> Callable[..., Any]:
        # The function closes over what it needs, not over self: no reference cycle.
        device, float_dtype = self.device, self.float_dtype
        module = self.module
        call_target = module if name == "forward" else target
        if outputs is not None:
            signature = signature.replace(return_annotation=outputs)

        names = tuple(signature.parameters)
        every_name = frozenset(names)

        def call(*args: Any, **kwargs: Any) -> Any:
            if not args and kwargs.keys() == every_name:  # core's call, all by name: no bind
                values = [to_torch(kwargs[name], device, float_dtype) for name in names]
                named: dict[str, Any] = {}
            else:
                bound = signature.bind(*args, **kwargs)
                values = [to_torch(v, device, float_dtype) for v in bound.args]
                named = {k: to_torch(v, device, float_dtype) for k, v in bound.kwargs.items()}
            with torch.inference_mode():
                return call_target(*values, **named)

        call.__signature__ = signature  # type: ignore[attr-defined]
        call.__name__ = name
        call.__qualname__ = f"TorchModel.{name}"
        call.__doc__ = f"Run {self.name}'s {name}{signature} under torch.inference_mode()."
        return call

    def __repr__(self) -> str:
        forward = inspect.signature(self.forward)
        return f"<TorchModel {self.name} ({self.kind}) on {self.device}: forward{forward}>"


def to_torch(value: Any, device: torch.device, float_dtype: torch.dtype) -> Any:
    """A numpy array of numbers as a tensor (a float64 one in ``float_dtype``), any tensor on
    ``device``; other values unchanged."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        if not value.flags.writeable or not value.flags.c_contiguous:
            value = np.ascontiguousarray(value).copy()
        tensor = torch.from_numpy(value)
        if value.dtype == np.float64 and float_dtype != torch.float64:
            tensor = tensor.to(float_dtype)
        return tensor if tensor.device == device else tensor.to(device)
    if isinstance(value, torch.Tensor) and value.device != device:
        return value.to(device)
    return value
