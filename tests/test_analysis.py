"""Model analysis: the rows' columns, from the ``columns`` setting or the model's
``feature_names_in_`` (scikit-learn's record of the DataFrame a model was fitted on), and what
validation, the request schema and ``/info`` make of them. No pandas or scikit-learn needed."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from models import FeaturesModel, SumModel

import core
from core.analysis import ANY_COLUMN_TYPE, Argument, Column, analyse, columns_from_model
from core.errors import ValidationError
from core.openapi import argument_schema
from core.validation import RequestValidator

DERIVED = (Column("b", ANY_COLUMN_TYPE), Column("a", ANY_COLUMN_TYPE))


class WithFeatures:
    def __init__(self, names: Any) -> None:
        self.feature_names_in_ = names

    def predict(self, X: Any, scale: float = 1.0) -> Any:
        return X


class Unfitted:
    """Like a Pipeline whose first step has no feature_names_in_: the property raises."""

    @property
    def feature_names_in_(self) -> Any:
        raise AttributeError("not fitted")

    def predict(self, X: Any) -> Any:
        return X


def test_a_model_without_feature_names_has_no_columns() -> None:
    interface = analyse(SumModel())
    assert interface.columns is None
    assert all(a.columns is None for a in interface.arguments)


def test_feature_names_in_become_the_rows_columns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="core"):
        interface = analyse(FeaturesModel())
    assert interface.columns == DERIVED
    assert interface.rows is not None and interface.rows.columns == DERIVED
    assert all(type(c.name) is str for c in DERIVED)  # not numpy's str_
    assert "columns: 2 derived from the model's feature_names_in_ (b, a), type any" in caplog.text


def test_only_the_rows_argument_gets_the_columns() -> None:
    interface = analyse(WithFeatures(np.array(["x"], dtype=object)))
    args = {a.name: a for a in interface.arguments}
    assert args["X"].columns == (Column("x", ANY_COLUMN_TYPE),)
    assert args["scale"].columns is None


def test_the_columns_setting_wins_over_feature_names(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="core"):
        interface = analyse(FeaturesModel(), columns=[{"name": "a", "type": "int"}])
    assert interface.columns == (Column("a", "int"),)
    assert interface.rows is not None and interface.rows.columns == (Column("a", "int"),)
    assert "feature_names_in_" not in caplog.text


def test_fixed_rows_argument_gets_the_columns_too() -> None:
    interface = analyse(FeaturesModel(), auto_detect_predict_params=False)
    assert [(a.name, a.columns) for a in interface.arguments] == [("data_for_predict", DERIVED)]


@pytest.mark.parametrize(
    "names",
    [None, np.array([], dtype=object), np.array(["a", "a"], dtype=object), [1, 2], ["a", ""],
     "ab", 3],
)
def test_feature_names_that_are_not_unique_strings_are_ignored(names: Any) -> None:
    assert columns_from_model(WithFeatures(names)) is None
    assert analyse(WithFeatures(names)).columns is None


def test_a_feature_names_property_that_raises_is_ignored() -> None:
    assert analyse(Unfitted()).columns is None


def test_argument_columns_default_to_none() -> None:
    assert Argument("X").columns is None


# ---------------------------------------------------------------------- validation


def validator() -> RequestValidator:
    return RequestValidator(analyse(FeaturesModel()))


def test_dict_rows_are_put_in_the_models_order_and_null_is_a_value() -> None:
    values = validator().validate({"X": [{"a": 1, "b": 2}, {"a": None, "b": "x"}]})
    assert values == {"X": [[2, 1], ["x", None]]}


def test_list_rows_only_need_the_right_length() -> None:
    rows = [[1, None], ["x", [1, 2]]]
    assert validator().validate({"X": rows})["X"] == rows
    with pytest.raises(ValidationError) as caught:
        validator().validate({"X": [[1, 2], [1]]})
    assert caught.value.details == [{"loc": ["body", "X", 1], "msg": "expected 2 values (b, a), got 1",
                                     "type": "wrong_length"}]


def test_a_missing_or_unknown_field_is_named() -> None:
    with pytest.raises(ValidationError) as caught:
        validator().validate({"X": [{"b": 1}, {"a": 1, "b": 2, "c": 3}]})
    assert [(d["loc"], d["type"]) for d in caught.value.details] == [
        (["body", "X", 0, "a"], "missing"), (["body", "X", 1, "c"], "extra_forbidden")]


def test_null_still_counts_as_missing_in_a_typed_column() -> None:
    typed = RequestValidator(analyse(SumModel(), columns=[{"name": "a", "type": "float"}]))
    with pytest.raises(ValidationError, match="X.0.a: field required"):
        typed.validate({"X": [{"a": None}]})


def test_the_request_schema_names_the_fields_and_takes_any_value() -> None:
    interface = analyse(FeaturesModel())
    assert interface.rows is not None
    schema = argument_schema(interface.rows, interface.columns)
    assert schema["items"] == {"type": "object", "properties": {"b": {}, "a": {}},
                               "required": ["b", "a"], "additionalProperties": False}


# ---------------------------------------------------------------------- /info and predict


def served(spec: str) -> core.UP:
    up = core.UP(conf=core.Config(storage_type="components.ObjectStorage", storage_kwargs={"spec": spec}))
    up.ml.load()
    return up


def test_info_names_the_columns_and_where_they_come_from() -> None:
    model = served("models:features_model").info()["model"]
    assert model["arguments"][0]["columns"] == ["b", "a"]
    assert model["columns_from"] == "feature_names_in_"
    assert model["columns"] is None
    plain = served("models:sum_model").info()["model"]
    assert plain["columns_from"] is None
    assert [a["columns"] for a in plain["arguments"]] == [None, None, None]


def test_the_numpy_transformer_gets_the_rows_in_the_models_order() -> None:
    up = served("models:features_model")
    assert up.predict(X=[{"a": 1, "b": 2}, [3, None]]) == [[2.0, 1.0], [3.0, None]]


# ---------------------------------------------------------------------- declared outputs


class Declares:
    """Its return annotation declares two outputs (a string annotation here: this module
    uses ``from __future__ import annotations``)."""

    def predict(self, X: core.Tensor("float32", (None, 2))) -> core.Outputs({
        "label": core.Tensor("int64", (None,)),
        "scores": core.Tensor("float32", (None,), kind="sequence_of_maps", key_dtype="string"),
    }):
        return {}


class OneTensor:
    def predict(self, X) -> core.Tensor("float64", (None,)):
        return X


def test_the_return_annotation_declares_the_outputs() -> None:
    outputs = analyse(Declares()).outputs
    assert isinstance(outputs, core.Outputs)
    assert list(outputs) == ["label", "scores"]
    assert outputs["label"] == core.Tensor("int64", (None,))
    assert outputs["scores"].kind == "sequence_of_maps" and outputs["scores"].key_dtype == "string"
    assert analyse(Declares(), auto_detect_predict_params=False).outputs == outputs


def test_a_single_tensor_is_one_output_named_after_the_predict_method() -> None:
    assert analyse(OneTensor()).outputs == core.Outputs({"predict": core.Tensor("float64", (None,))})
    assert analyse(SumModel()).outputs is None  # no declaration: nothing is made up


def test_outputs_is_an_ordered_mapping() -> None:
    outputs = core.Outputs([("b", core.Tensor()), ("a", core.Tensor("int64"))])
    assert list(outputs.items()) == [("b", core.Tensor()), ("a", core.Tensor("int64"))]
    assert len(outputs) == 2 and "a" in outputs and "c" not in outputs
    assert outputs == core.Outputs({"b": core.Tensor(), "a": core.Tensor("int64")})
    assert outputs != core.Outputs({"a": core.Tensor("int64"), "b": core.Tensor()})
    assert hash(outputs) == hash(core.Outputs({"b": core.Tensor(), "a": core.Tensor("int64")}))
    assert "Outputs({'b': Tensor(" in repr(outputs)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: core.Outputs({}), "at least one output"),
    (lambda: core.Outputs({"a": "float32"}), "output 'a' must be a core.Tensor"),
    (lambda: core.Outputs({"": core.Tensor()}), "non-empty string"),
    (lambda: core.Outputs([("a", core.Tensor()), ("a", core.Tensor())]), "declared twice"),
    (lambda: core.Tensor(kind="dict"), "kind must be one of tensor, sequence_of_maps"),
    (lambda: core.Tensor(kind="sequence_of_maps"), "key_dtype is set exactly when"),
    (lambda: core.Tensor(key_dtype="string"), "key_dtype is set exactly when"),
])
def test_declarations_that_make_no_sense_are_refused(make: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_an_inputs_own_name() -> None:
    tensor = core.Tensor("float32", (None, 2), name="input:0")
    assert tensor.name == "input:0" and core.Tensor("float32", (None, 2)).name is None
