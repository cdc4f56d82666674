"""The default transformers and the JSON-ready conversion of results (core.transformers)."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from core.analysis import Argument, Tensor
from core.errors import ConfigError
from core.transformers import NumpyTransformer, numpy_dtype, to_jsonable


def dumps(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def test_a_dict_of_arrays_orjson_writes_is_handed_over_as_it_is():
    outputs = {"label": np.array([1, 0], dtype=np.int64),
               "probabilities": np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)}
    assert to_jsonable(outputs) is outputs
    assert orjson.loads(dumps(to_jsonable(outputs))) == {"label": [1, 0],
                                                         "probabilities": [[0.25, 0.75], [0.5, 0.5]]}


@pytest.mark.parametrize("value, expected", [
    (np.arange(6, dtype=np.float64).reshape(2, 3)[:, 1], [1.0, 4.0]),  # not contiguous
    (np.array(["a", "b"], dtype=object), ["a", "b"]),  # orjson cannot write object arrays
    (np.array([1.5, np.nan], dtype=np.float16), [1.5, None]),  # a dtype orjson does not take
    (np.float32(0.5), 0.5),  # a numpy scalar
])
def test_a_dict_with_a_value_orjson_cannot_write_is_converted(value, expected):
    outputs = {"native": np.array([1.0], dtype=np.float32), "other": value}
    converted = to_jsonable(outputs)
    assert converted is not outputs
    assert outputs["other"] is value  # the model's own dict is left alone
    assert orjson.loads(dumps(converted)) == {"native": [1.0], "other": expected}


def test_keys_that_are_not_strings_become_strings():
    assert orjson.loads(dumps(to_jsonable({1: np.array([2], dtype=np.int64)}))) == {"1": [2]}


def test_nan_and_infinities_in_plain_values_are_null():
    converted = to_jsonable({"score": math.nan, "rows": [math.inf, 1.0]})
    assert converted == {"score": None, "rows": [None, 1.0]}


def test_numpy_dtype_names_strings_as_object_arrays_and_refuses_what_numpy_does_not_know():
    assert numpy_dtype("float32") == np.float32
    assert numpy_dtype("float32") is numpy_dtype("float32")
    assert numpy_dtype("string") == np.dtype(object)
    with pytest.raises(TypeError):
        numpy_dtype("float33")


def test_the_numpy_transformer_converts_to_the_tensor_dtype_or_hands_the_array_over():
    argument = Argument(name="X", kind="array", tensor=Tensor("float32", (None, 2)))
    transformer = NumpyTransformer()
    converted = transformer.to_model([[1, 2]], argument)
    assert converted.dtype == np.float32 and converted.tolist() == [[1.0, 2.0]]
    assert transformer.to_model(converted, argument) is converted
    widened = NumpyTransformer("float64").to_model(converted, argument)
    assert widened.dtype == np.float64


def test_a_dtype_for_predict_numpy_does_not_know_is_a_config_error():
    with pytest.raises(ConfigError, match="float33"):
        NumpyTransformer("float33")
