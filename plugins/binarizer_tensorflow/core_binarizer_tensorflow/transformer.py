"""The ``tf_tensor`` transformer (pymlup's ``TFTensorDataTransformer``): the rows reach the
model as a ``tf.Tensor``, and tensors in its result come back as JSON lists.

Registered by path: TensorFlow is imported when a config names the transformer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from core.analysis import Argument
from core.components import Transformer
from core.errors import ConfigError, PredictTransformDataError
from core.transformers import to_jsonable

from core_binarizer_tensorflow.model import to_numpy
from core_binarizer_tensorflow.runtime import tf


class TFTensorTransformer(Transformer):
    """Rows in as a ``tf.Tensor`` of ``dtype_for_predict`` (else the dtype the model declares,
    else TensorFlow's choice: ``float32`` for numbers with a fraction, ``int32`` for whole
    ones); ``tf.Tensor`` values in the result (alone, in dicts, lists or tuples) out as lists.

    A value the dtype cannot hold, or rows of different lengths, are a 422 naming the rows
    argument. Arguments other than arrays are left as they are.
    """

    def __init__(self, dtype: str | None = None) -> None:
        if dtype is not None:
            try:
                tf.as_dtype(dtype)
            except TypeError:
                raise ConfigError(
                    f"dtype_for_predict {dtype!r} is not a TensorFlow dtype (float32, int64, "
                    f"string...)"
                ) from None
        self.dtype = dtype

    def to_model(self, data: Any, argument: Argument) -> Any:
        dtype = self.dtype or (argument.tensor.dtype if argument.tensor else None)
        if isinstance(data, tf.Tensor) and (dtype is None or data.dtype.name == dtype):
            return data
        if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
            keys = list(data[0])  # dict rows without known columns: the first row's keys
            data = [[row.get(key) for key in keys] for row in data]
        try:
            if dtype is None:
                return tf.convert_to_tensor(data)
            return tf.convert_to_tensor(np.asarray(data, dtype=tf.as_dtype(dtype).as_numpy_dtype))
        except (ValueError, TypeError, OverflowError) as error:
            raise PredictTransformDataError(
                f"{argument.name} cannot be converted to a {dtype or 'TensorFlow'} tensor: "
                f"{' '.join(str(error).split())}", loc=["body", argument.name],
            ) from None

    def from_model(self, data: Any) -> Any:
        return to_jsonable(plain(data))


def plain(data: Any) -> Any:
    """``data`` with every ``tf.Tensor`` (and ``tf.Variable``) made a numpy array, strings
    decoded; containers walked."""
    if isinstance(data, (tf.Tensor, tf.Variable)):
        return to_numpy(data)
    if isinstance(data, dict):
        return {key: plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [plain(value) for value in data]
    return data
