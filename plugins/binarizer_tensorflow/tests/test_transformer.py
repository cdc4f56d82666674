"""The ``tf_tensor`` transformer: rows to a ``tf.Tensor``, tensors in results to JSON."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
import tensorflow as tf
from core.analysis import Argument, Tensor
from core.errors import ConfigError, PredictTransformDataError
from core.plugins import load_plugins

from core_binarizer_tensorflow.transformer import TFTensorTransformer

ROWS = Argument("X", "array", is_rows=True)
DECLARED = Argument("X", "array", is_rows=True, tensor=Tensor("float32", (None, 2)))


def test_registered_as_tf_tensor_and_as_pymlups_class() -> None:
    transformers = load_plugins().transformers
    assert transformers.get("tf_tensor") is TFTensorTransformer
    path = "mlup.ml.data_transformers.tf_tensor_data_transformer.TFTensorDataTransformer"
    assert transformers.get(path) is TFTensorTransformer
    assert transformers.entries["tf_tensor"].distribution == "core-binarizer-tensorflow"


def test_rows_become_a_tensor_of_dtype_for_predict() -> None:
    tensor = TFTensorTransformer(dtype="float64").to_model([[1, 2], [3, 4]], ROWS)
    assert isinstance(tensor, tf.Tensor) and tensor.dtype == tf.float64
    assert tensor.numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_without_dtype_for_predict_the_declared_dtype_then_tensorflows_choice() -> None:
    assert TFTensorTransformer().to_model([[1, 2]], DECLARED).dtype == tf.float32
    assert TFTensorTransformer().to_model([[0.5, 2.0]], ROWS).dtype == tf.float32  # as pymlup
    assert TFTensorTransformer().to_model([[1, 2]], ROWS).dtype == tf.int32
    assert TFTensorTransformer().to_model([["a", "b"]], ROWS).dtype == tf.string
    same = tf.constant([[1.0, 2.0]])
    assert TFTensorTransformer().to_model(same, DECLARED) is same


def test_dict_rows_without_columns_take_the_first_rows_keys() -> None:
    rows = [{"a": 1, "b": 2}, {"b": 4, "a": 3}]
    tensor = TFTensorTransformer(dtype="float32").to_model(rows, ROWS)
    assert tensor.numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    ("rows", "dtype", "fragment"),
    [
        ([[1.0, 2.0], [3.0]], "float32", "cannot be converted to a float32 tensor"),
        ([["x", 1.0]], "float32", "cannot be converted to a float32 tensor"),
        ([[2**70]], "int64", "cannot be converted to a int64 tensor"),
    ],
)
def test_rows_the_dtype_cannot_hold_are_a_422_naming_the_argument(
    rows: list[list[object]], dtype: str, fragment: str
) -> None:
    with pytest.raises(PredictTransformDataError) as caught:
        TFTensorTransformer(dtype=dtype).to_model(rows, ROWS)
    assert caught.value.status_code == 422
    assert caught.value.details[0]["loc"] == ["body", "X"]
    assert fragment in caught.value.msg and "\n" not in caught.value.msg


def test_a_dtype_tensorflow_does_not_know_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'floaty' is not a TensorFlow dtype"):
        TFTensorTransformer(dtype="floaty")


def test_results_become_json() -> None:
    transformer = TFTensorTransformer()
    result = {
        "probabilities": tf.constant([[0.25, 0.75]]),
        "labels": tf.constant(["yes"]),
        "parts": [tf.constant([1, 2]), np.array([3.5])],
        "count": tf.Variable(3),
    }
    assert orjson.loads(orjson.dumps(transformer.from_model(result),
                                     option=orjson.OPT_SERIALIZE_NUMPY)) == {
        "probabilities": [[0.25, 0.75]],
        "labels": ["yes"],
        "parts": [[1, 2], [3.5]],
        "count": 3,
    }
    nan = transformer.from_model(tf.constant([1.5, float("nan")]))
    assert orjson.loads(orjson.dumps(nan, option=orjson.OPT_SERIALIZE_NUMPY)) == [1.5, None]
