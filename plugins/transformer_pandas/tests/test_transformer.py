"""The ``pandas`` transformer on its own (DataFrames in, JSON out), and through core's Python
API (``core.UP(ml_model=...)`` with core-storage-memory)."""

from __future__ import annotations

from typing import Any

import core
import numpy as np
import pandas as pd
import pytest
from core.analysis import Argument, Column
from core.errors import ConfigError, PredictTransformDataError, ValidationError
from core.plugins import load_plugins
from core.transformers import to_jsonable
from sklearn.pipeline import Pipeline

from core_transformer_pandas.transformer import PandasTransformer

ROWS = Argument("X", "array", is_rows=True)


def rows_argument(*columns: Column) -> Argument:
    return Argument("X", "array", is_rows=True, columns=columns)


def test_the_entry_point_registers_it_as_pandas() -> None:
    assert load_plugins().transformers.get("pandas") is PandasTransformer


# ---------------------------------------------------------------------- to_model


def test_dict_rows_without_columns_give_the_keys() -> None:
    frame = PandasTransformer().to_model([{"a": 1, "b": "x"}, {"a": 2}], ROWS)
    assert list(frame.columns) == ["a", "b"]
    assert frame["a"].tolist() == [1, 2]
    assert frame["b"].isna().tolist() == [False, True]


def test_list_rows_without_columns_get_default_names() -> None:
    frame = PandasTransformer().to_model([[1, 2.5], [3, 4.5]], ROWS)
    assert list(frame.columns) == [0, 1]
    assert frame.dtypes.tolist() == [np.dtype("int64"), np.dtype("float64")]


def test_the_pymlup_class_path_is_this_transformer() -> None:
    """pymlup's PandasDataFrameTransformer (ModelDataTransformerType.PANDAS_DF) is ``pandas``."""
    transformers = load_plugins().transformers
    path = "mlup.ml.data_transformers.pandas_data_transformer.PandasDataFrameTransformer"
    assert transformers.get(path) is PandasTransformer
    assert transformers.get(core.constants.ModelDataTransformerType.PANDAS_DF) is PandasTransformer


def test_a_column_of_lists_holds_the_lists() -> None:
    """A ``collection_type: List`` column (pymlup's) keeps each row's list as one object."""
    argument = rows_argument(Column("n", "int"), Column("tags", "int", collection_type="list"))
    frame = PandasTransformer().to_model([[1, [1, 2]], [2, []]], argument)
    assert frame["n"].dtype == np.dtype("int64")
    assert frame["tags"].dtype == np.dtype("object")
    assert frame["tags"].tolist() == [[1, 2], []]


def test_other_arguments_pass_through_unchanged() -> None:
    value = [[1, 2]]
    assert PandasTransformer().to_model(value, Argument("ids", "array")) is value


def test_columns_name_and_type_the_frame() -> None:
    argument = rows_argument(Column("n", "int"), Column("x", "float"), Column("ok", "bool"),
                             Column("city", "str"), Column("free", "any"))
    frame = PandasTransformer().to_model([[1, 2, True, "Oslo", 1.5], [3, 4.5, False, "Rome", 2]],
                                         argument)
    assert list(frame.columns) == ["n", "x", "ok", "city", "free"]
    dtypes = frame.dtypes.to_dict()
    assert dtypes["n"] == np.dtype("int64")
    assert dtypes["x"] == np.dtype("float64")  # an int in a float column: still float64
    assert dtypes["ok"] == np.dtype("bool")
    assert pd.api.types.is_string_dtype(dtypes["city"])
    assert dtypes["free"] == np.dtype("float64")  # inferred
    assert frame["x"].tolist() == [2.0, 4.5]


def test_missing_values_do_not_crash_an_int_or_bool_column() -> None:
    argument = rows_argument(Column("n", "int", required=False), Column("ok", "bool", False),
                             Column("city", "str", False))
    frame = PandasTransformer().to_model([[1, None, None], [None, True, "Rome"]], argument)
    assert frame["n"].dtype == np.dtype("float64")
    assert frame["n"].tolist()[0] == 1.0 and np.isnan(frame["n"].tolist()[1])
    assert frame["ok"].dtype == np.dtype("object") and frame["ok"].tolist() == [None, True]
    assert frame["city"].isna().tolist() == [True, False]


def test_an_array_that_skipped_validation_gets_the_column_names() -> None:
    argument = rows_argument(Column("a", "int"), Column("b", "float"))
    frame = PandasTransformer().to_model(np.array([[1.0, 2.0]]), argument)
    assert list(frame.columns) == ["a", "b"] and frame.dtypes.tolist() == [np.dtype("float64")] * 2
    with pytest.raises(PredictTransformDataError, match=r"expected 2 values \(a, b\), got 1"):
        PandasTransformer().to_model([[1, 2.0], [1]], argument)


def test_an_int_beyond_int64_is_a_422_naming_the_cell() -> None:
    argument = rows_argument(Column("city", "str"), Column("n", "int"))
    with pytest.raises(PredictTransformDataError) as caught:
        PandasTransformer().to_model([["Oslo", 1], ["Rome", 2**64]], argument)
    assert caught.value.status_code == 422
    assert caught.value.details[0]["loc"] == ["body", "X", 1, "n"]
    assert "18446744073709551616 cannot be converted to int64" in caught.value.msg


def test_dtype_for_predict_applies_to_the_whole_frame() -> None:
    argument = rows_argument(Column("a", "int"), Column("b", "float"))
    frame = PandasTransformer(dtype="float32").to_model([[1, 2.5], [3, 4.0]], argument)
    assert frame.dtypes.tolist() == [np.dtype("float32")] * 2


def test_a_value_dtype_for_predict_cannot_hold_is_a_422_naming_the_cell() -> None:
    argument = rows_argument(Column("a", "float"), Column("b", "any"))
    with pytest.raises(PredictTransformDataError) as caught:
        PandasTransformer(dtype="float32").to_model([[1.0, "2.5"], [2.0, "many"]], argument)
    assert caught.value.details[0]["loc"] == ["body", "X", 1, "b"]
    assert "'many' cannot be converted to float32" in caught.value.msg
    with pytest.raises(PredictTransformDataError) as missing:
        PandasTransformer(dtype="int64").to_model([[None]], ROWS)
    assert missing.value.details[0]["loc"] == ["body", "X", 0, 0]


def test_a_dtype_pandas_does_not_know_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="dtype_for_predict 'floaty' is not a pandas dtype"):
        PandasTransformer(dtype="floaty")


# ---------------------------------------------------------------------- from_model


def test_a_dataframe_becomes_records_with_null_for_every_missing_value() -> None:
    frame = pd.DataFrame({
        "x": [1.5, np.nan],
        "n": pd.array([1, None], dtype="Int64"),
        "s": ["a", None],
        "t": pd.to_datetime(["2024-05-01 12:30", None]),
        "d": pd.to_timedelta(["1s", None]),
    })
    assert PandasTransformer().from_model(frame) == [
        {"x": 1.5, "n": 1, "s": "a", "t": "2024-05-01T12:30:00", "d": "P0DT0H0M1S"},
        {"x": None, "n": None, "s": None, "t": None, "d": None},
    ]


def test_a_series_or_index_becomes_a_list() -> None:
    transformer = PandasTransformer()
    assert transformer.from_model(pd.Series([1.0, np.nan, 3.0])) == [1.0, None, 3.0]
    assert transformer.from_model(pd.Series(["a", None], dtype="string")) == ["a", None]
    assert transformer.from_model(pd.Index([1, 2])) == [1, 2]


def test_containers_are_walked_and_numpy_is_left_to_core() -> None:
    transformer = PandasTransformer()
    array = np.arange(4.0)
    assert transformer.from_model(array) is to_jsonable(array)  # orjson writes it natively
    assert transformer.from_model(np.array(["a", "b"])) == ["a", "b"]
    assert transformer.from_model({"proba": pd.Series([0.25, np.nan]), "n": np.int64(2),
                                   "rows": (pd.NA, pd.NaT, np.float64("nan"))}) == {
        "proba": [0.25, None], "n": 2, "rows": [None, None, None]}


# ---------------------------------------------------------------------- the Python API


def test_the_python_api_serves_the_pipeline(pipeline: Pipeline, frame: pd.DataFrame) -> None:
    up = core.UP(ml_model=pipeline, conf=core.Config(
        data_transformer_for_predict="pandas", data_transformer_for_predicted="pandas"))
    up.ml.load()
    expected = pipeline.predict(frame).tolist()
    assert up.predict(X=frame.to_dict(orient="records")) == expected
    assert up.predict(X=frame.values.tolist()) == expected
    with pytest.raises(ValidationError, match=r"X\.0\.income: field required"):
        up.predict(X=[{"city": "Oslo", "age": 3}])
    assert up.info()["model"]["columns_from"] == "feature_names_in_"


def test_the_python_api_with_typed_columns_and_a_series_result(frame: pd.DataFrame) -> None:

    class Doubler:
        def predict(self, X: Any) -> Any:
            assert isinstance(X, pd.DataFrame)
            return X["income"] * 2

    up = core.UP(ml_model=Doubler(), conf=core.Config(
        data_transformer_for_predict="pandas", data_transformer_for_predicted="pandas",
        columns=[{"name": "city", "type": "str"},
                 {"name": "income", "type": "float", "required": False}]))
    up.ml.load()
    assert up.predict(X=[{"income": 2.5, "city": "Oslo"}, ["Rome", None]]) == [5.0, None]
