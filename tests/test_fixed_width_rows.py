"""Models fitted on plain arrays (scikit-learn's ``n_features_in_``, no column names): analysis
records the rows' width and, from scikit-learn's estimator tags, whether they take numbers only
and null; validation answers a row of the wrong width or a string in a number column with a
422 naming it, where the model would raise (a 500). Served end to end in test_pymlup_compat.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pymlup_models import WidthModel
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from core.analysis import FixedWidthRows, analyse, fixed_width_rows
from core.errors import ModelAnalysisError, ValidationError
from core.openapi import argument_schema
from core.validation import RequestValidator

X = np.arange(40, dtype=float).reshape(10, 4)
Y = np.array([0, 1] * 5)


def fitted(model: Any) -> Any:
    return model.fit(X, Y)


def details(model: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        RequestValidator(analyse(model)).validate(body)
    return caught.value.details


# ---------------------------------------------------------------------- analysis


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (lambda: fitted(LogisticRegression()), FixedWidthRows(4, numbers=True, nulls=False)),
        (lambda: fitted(HistGradientBoostingClassifier(max_iter=2)), FixedWidthRows(4, numbers=True, nulls=True)),
        # a Pipeline: its first step sees the rows
        (lambda: fitted(make_pipeline(StandardScaler(), LogisticRegression())), FixedWidthRows(4, True, True)),
        # SimpleImputer takes strings though its tags do not say so: the width only
        (lambda: fitted(make_pipeline(SimpleImputer(), LogisticRegression())), FixedWidthRows(4)),
        (lambda: fitted(make_pipeline(OneHotEncoder(), LogisticRegression())), FixedWidthRows(4)),
        (lambda: fitted(make_pipeline(ColumnTransformer([("s", StandardScaler(), [0, 1])]), LogisticRegression())),
         FixedWidthRows(4)),
        (WidthModel, FixedWidthRows(3)),  # not scikit-learn's: the width only
    ],
    ids=["logistic", "hist-gradient-boosting", "scaler-pipeline", "imputer-pipeline", "encoder-pipeline",
         "column-transformer", "duck-typed"],
)
def test_the_width_and_value_kind_come_from_the_model(model: Any, expected: FixedWidthRows) -> None:
    assert fixed_width_rows(model()) == expected


@pytest.mark.parametrize("width", [None, 0, True, "4", 2.0])
def test_no_usable_width_means_no_check(width: Any) -> None:
    class Model:
        n_features_in_ = width

        def predict(self, X: Any) -> Any:
            return X

    assert fixed_width_rows(Model()) is None
    assert analyse(Model()).rows.fixed_width is None  # type: ignore[union-attr]


def test_an_unfitted_pipeline_has_no_width() -> None:
    assert fixed_width_rows(make_pipeline(StandardScaler(), LogisticRegression())) is None


def test_only_the_rows_argument_gets_the_width() -> None:
    class Model:
        n_features_in_ = 2

        def predict(self, X: Any, threshold: float = 0.5) -> Any:
            return X

    interface = analyse(Model())
    assert [a.fixed_width for a in interface.arguments] == [FixedWidthRows(2), None]
    assert analyse(Model(), auto_detect_predict_params=False).rows.fixed_width == FixedWidthRows(2)  # type: ignore[union-attr]


def test_columns_of_another_count_than_the_model_is_a_start_up_error() -> None:
    with pytest.raises(ModelAnalysisError, match="columns lists 2 columns but the model was fitted on 4 features"):
        analyse(fitted(LogisticRegression()), columns=[{"name": "a"}, {"name": "b"}])
    columns = [{"name": n} for n in "abcd"]
    assert analyse(fitted(LogisticRegression()), columns=columns).columns is not None


# ---------------------------------------------------------------------- validation


def test_good_rows_pass_unchanged() -> None:
    rows = [[1, 2.5, 3, 4], [5, 6, 7, 8.0]]
    values = RequestValidator(analyse(fitted(LogisticRegression()))).validate({"X": rows})
    assert values["X"] is rows


def test_a_row_of_the_wrong_width_is_named() -> None:
    [detail] = details(fitted(LogisticRegression()), {"X": [[1, 2, 3, 4], [1, 2, 3]]})
    assert detail["loc"] == ["body", "X", 1]
    assert detail["msg"] == "expected 4 values (the model was fitted on 4 features (n_features_in_)), got 3"
    assert detail["type"] == "wrong_length"


def test_a_string_in_a_number_column_is_named() -> None:
    found = details(fitted(LogisticRegression()), {"X": [[1, 2, 3, 4], [1, "two", 3, "4"]]})
    assert [d["loc"] for d in found] == [["body", "X", 1, 1]]  # the first bad value of the row
    assert found[0]["msg"] == "must be a number (the model takes numbers only), got str 'two'"


def test_null_is_refused_where_the_model_cannot_take_nan() -> None:
    [detail] = details(fitted(LogisticRegression()), {"X": [[1, None, 3, 4]]})
    assert detail["loc"] == ["body", "X", 0, 1]
    assert "does not take missing values" in detail["msg"]
    model = fitted(HistGradientBoostingClassifier(max_iter=2))
    assert RequestValidator(analyse(model)).validate({"X": [[1, None, 3, 4]]})["X"] == [[1, None, 3, 4]]


@pytest.mark.parametrize(
    ("rows", "loc", "msg"),
    [
        ([1, 2, 3], ["body", "X", 0], "must be a list of 3 values"),
        ([{"a": 1}], ["body", "X", 0], "must be a list of 3 values"),
        ([[1, 2, 3], [1, 2, 3, 4]], ["body", "X", 1], "expected 3 values"),
    ],
)
def test_without_number_tags_only_the_shape_is_checked(rows: list[Any], loc: list[Any], msg: str) -> None:
    detail = details(WidthModel(), {"X": rows})[0]  # one per bad row
    assert detail["loc"] == loc and detail["msg"].startswith(msg)
    assert RequestValidator(analyse(WidthModel())).validate({"X": [["a", None, 1]]})["X"] == [["a", None, 1]]


def test_an_empty_list_of_rows_is_valid() -> None:
    assert RequestValidator(analyse(fitted(LogisticRegression()))).validate({"X": []}) == {"X": []}


def test_the_request_schema_gives_the_width() -> None:
    rows = analyse(fitted(LogisticRegression())).rows
    assert rows is not None
    assert argument_schema(rows, None)["items"] == {
        "type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
    }
    duck = analyse(WidthModel()).rows
    assert duck is not None
    assert argument_schema(duck, None)["items"] == {"type": "array", "items": {}, "minItems": 3, "maxItems": 3}
