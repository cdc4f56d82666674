"""The ``torch_tensor`` transformer (pymlup's ``TorchTensorDataTransformer``): rows become a
``torch.Tensor``; tensors in the model's result become JSON."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from core.analysis import Argument
from core.components import Transformer
from core.errors import ConfigError, PredictTransformDataError
from core.transformers import to_jsonable


def torch_dtype(name: str) -> torch.dtype:
    """``torch.<name>`` (``float32``, ``int64``, ``bool``...), or a ConfigError."""
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ConfigError(f"dtype_for_predict {name!r} is not a torch dtype (float32, float64, "
                          f"float16, bfloat16, int64, int32, uint8, bool...)")
    return dtype


class TorchTensorTransformer(Transformer):
    """Every array argument (the rows, and any argument declared a tensor) becomes a
    ``torch.Tensor`` of ``dtype`` (``dtype_for_predict``), else of the argument's declared
    dtype, else of torch's choice (float32 for numbers with a fraction, int64 for whole
    numbers); the model's binarizer moves it to the model's device. Tensors in the result
    (alone, or in tuples, lists and dicts) come back as JSON: numbers, nested lists, NaN as
    null."""

    def __init__(self, dtype: str | None = None) -> None:
        self.dtype = torch_dtype(dtype) if dtype is not None else None

    def to_model(self, data: Any, argument: Argument) -> Any:
        dtype = self.dtype
        if dtype is None and argument.tensor is not None and argument.tensor.dtype != "string":
            dtype = torch_dtype(argument.tensor.dtype)
        try:
            if isinstance(data, torch.Tensor):
                return data if dtype is None else data.to(dtype)
            if isinstance(data, np.ndarray):
                if data.dtype.kind not in "biuf":
                    return data  # strings, objects: the model takes them as they are
                array = data if data.flags.writeable else data.copy()
                tensor = torch.from_numpy(np.ascontiguousarray(array))
                return tensor if dtype is None else tensor.to(dtype)
            return torch.tensor(data, dtype=dtype)
        except (ValueError, TypeError, RuntimeError, OverflowError) as error:
            kind = f" of {dtype}" if dtype else ""
            raise PredictTransformDataError(
                f"cannot make a torch tensor{kind} of {argument.name!r}: "
                f"{' '.join(str(error).split())}", loc=["body", argument.name],
            ) from None

    def from_model(self, data: Any) -> Any:
        return to_jsonable(plain(data))


def plain(data: Any) -> Any:
    """``data`` with each tensor as a numpy array (on the CPU, detached; bfloat16 as float32,
    a 0-d tensor as its number); tuples, lists and dicts are walked."""
    if isinstance(data, torch.Tensor):
        tensor = data.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        if tensor.ndim == 0:
            return tensor.item()
        return tensor.numpy()
    if isinstance(data, dict):
        return {key: plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [plain(value) for value in data]
    return data
