"""End to end: a scikit-learn pipeline fitted on a DataFrame, pickled, served by a real
``hypercorn core.app:app`` (core-storage-disk + core-binarizer-pickle) with the ``pandas``
transformer, and asked over HTTP with httpx."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The disk storage and pickle binarizer serve the pipeline (the test extra installs them).
import core_binarizer_pickle  # noqa: F401
import core_storage_disk  # noqa: F401
import httpx
import numpy as np
import pandas as pd
import pytest
from core.testing import Server
from sklearn.pipeline import Pipeline

#: The columns, typed: ``age`` and ``income`` may be missing (NaN for the pipeline's imputer).
TYPED_COLUMNS = [
    {"name": "city", "type": "str"},
    {"name": "age", "type": "int", "required": False},
    {"name": "income", "type": "float", "required": False},
]


@pytest.fixture(scope="module")
def derived(serve: Any, model_path: Path, disk_config: Callable[..., Any]) -> Server:
    """No ``columns``: they come from the pipeline's ``feature_names_in_``."""
    return serve(disk_config(model_path))


@pytest.fixture(scope="module")
def typed(serve: Any, model_path: Path, disk_config: Callable[..., Any]) -> Server:
    """``columns`` set, and the probabilities served (``predict_proba``)."""
    return serve(disk_config(model_path, columns=TYPED_COLUMNS,
                             predict_method_name="predict_proba"))


def predict(server: Server, rows: Any, **other: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", json={"X": rows, **other}, timeout=30)


def test_dict_and_list_rows_predict_what_the_pipeline_predicts(
    derived: Server, frame: pd.DataFrame, pipeline: Pipeline
) -> None:
    expected = pipeline.predict(frame).tolist()
    assert len(set(expected)) == 2  # both classes: the comparison means something
    records = [dict(reversed(list(row.items()))) for row in frame.to_dict(orient="records")]
    by_dict = predict(derived, records)
    assert by_dict.status_code == 200, derived.log()
    assert by_dict.json() == {"predict_result": expected}
    by_list = predict(derived, frame.values.tolist())
    assert by_list.status_code == 200, by_list.text
    assert by_list.json() == {"predict_result": expected}


def test_null_in_a_derived_column_is_a_missing_value(
    derived: Server, frame: pd.DataFrame, pipeline: Pipeline
) -> None:
    rows = [["Oslo", None, 40.0], {"city": "Rome", "age": 50, "income": None}]
    gaps = pd.DataFrame({"city": ["Oslo", "Rome"], "age": [np.nan, 50], "income": [40.0, np.nan]})
    r = predict(derived, rows)
    assert r.status_code == 200, r.text
    assert r.json()["predict_result"] == pipeline.predict(gaps).tolist()


def test_info_and_openapi_name_the_columns_from_feature_names_in(derived: Server) -> None:
    info = httpx.get(f"{derived.url}/info").json()
    [x] = info["model"]["arguments"]
    assert x["name"] == "X" and x["columns"] == ["city", "age", "income"]
    assert info["model"]["columns_from"] == "feature_names_in_"
    assert info["model"]["columns"] is None  # nothing was configured
    row = info["request_schema"]["properties"]["X"]["items"]
    assert list(row["properties"]) == ["city", "age", "income"]
    assert row["required"] == ["city", "age", "income"]
    assert row["additionalProperties"] is False
    doc = httpx.get(f"{derived.url}/openapi.json").json()
    assert doc["components"]["schemas"]["PredictRequest"]["properties"]["X"]["items"] == row
    assert "3 derived from the model's feature_names_in_ (city, age, income)" in derived.log()


def test_dict_rows_are_validated_against_the_derived_columns(derived: Server) -> None:
    r = predict(derived, [{"city": "Oslo", "age": 30}, {"city": "Rome", "age": 1, "income": 2.0,
                                                         "zip": "00100"}, ["Oslo", 30]])
    assert r.status_code == 422, r.text
    details = {tuple(d["loc"]): d["msg"] for d in r.json()["detail"]}
    assert details[("body", "X", 0, "income")] == "field required"
    assert "unknown column" in details[("body", "X", 1, "zip")]
    assert "expected 3 values (city, age, income)" in details[("body", "X", 2)]


def test_typed_columns_with_missing_values_predict_what_the_pipeline_predicts(
    typed: Server, frame: pd.DataFrame, pipeline: Pipeline
) -> None:
    rows = [{"city": "Oslo", "age": 31, "income": 52.0},
            {"city": "Rome", "income": 31.5},            # age missing: NaN (float64)
            ["Paris", 22, None]]                          # income null: NaN
    gaps = pd.DataFrame({"city": ["Oslo", "Rome", "Paris"], "age": [31, np.nan, 22],
                         "income": [52.0, 31.5, np.nan]})
    r = predict(typed, rows)
    assert r.status_code == 200, typed.log()
    np.testing.assert_allclose(r.json()["predict_result"], pipeline.predict_proba(gaps))
    all_rows = predict(typed, frame.to_dict(orient="records"))
    np.testing.assert_allclose(all_rows.json()["predict_result"], pipeline.predict_proba(frame))
    info = httpx.get(f"{typed.url}/info").json()
    assert info["model"]["columns_from"] == "config"
    props = info["request_schema"]["properties"]["X"]["items"]["properties"]
    assert props == {"city": {"type": "string"}, "age": {"type": "integer"},
                     "income": {"type": "number"}}


def test_a_bad_value_is_a_422_naming_the_row_and_field(typed: Server) -> None:
    r = predict(typed, [{"city": "Oslo", "age": "old", "income": 1.0}, {"city": 7}])
    assert r.status_code == 422, r.text
    details = {tuple(d["loc"]): d["msg"] for d in r.json()["detail"]}
    assert details == {("body", "X", 0, "age"): "must be int, got str",
                       ("body", "X", 1, "city"): "must be str, got int"}


def test_a_value_pandas_cannot_hold_is_a_422_naming_the_row_and_column(typed: Server) -> None:
    # 2**63 is an int in JSON (orjson reads integers up to 2**64 - 1 exactly), so it passes the
    # type check; int64 cannot hold it. The transformer names the cell.
    r = predict(typed, [{"city": "Oslo", "age": 30}, {"city": "Rome", "age": 2**63}])
    assert r.status_code == 422, r.text
    [detail] = r.json()["detail"]
    assert detail["loc"] == ["body", "X", 1, "age"]
    assert detail["type"] == "transform_error"
    assert "cannot be converted to int64" in detail["msg"]
    assert "Traceback" not in typed.log()


def test_dataframe_and_series_results_come_back_as_records_and_lists(
    serve: Any, pickled: Callable[[Any], Path], disk_config: Callable[..., Any]
) -> None:
    class Report:  # defined here, so cloudpickle pickles it by value for the server
        def predict(self, X: Any, kind: str = "frame") -> Any:
            if kind == "series":
                return X["income"] * 2
            return pd.DataFrame({
                "city": X["city"],
                "income_k": X["income"] / 1000,
                "seen": pd.to_datetime(["2024-05-01", None][: len(X)]),
                "count": pd.array([1, None][: len(X)], dtype="Int64"),
            })

    server = serve(disk_config(pickled(Report()), columns=TYPED_COLUMNS))
    rows = [{"city": "Oslo", "income": 5000.0}, {"city": "Rome"}]
    frame = predict(server, rows)
    assert frame.status_code == 200, server.log()
    assert frame.json()["predict_result"] == [
        {"city": "Oslo", "income_k": 5.0, "seen": "2024-05-01T00:00:00", "count": 1},
        {"city": "Rome", "income_k": None, "seen": None, "count": None},
    ]
    series = predict(server, rows, kind="series")
    assert series.json()["predict_result"] == [10000.0, None]


def test_batching_predicts_each_request_on_its_own_frame(
    serve: Any, model_path: Path, disk_config: Callable[..., Any], frame: pd.DataFrame,
    pipeline: Pipeline,
) -> None:
    server = serve(disk_config(model_path, mode="batching", max_batch_wait=50))
    parts = [frame.iloc[i: i + 3] for i in range(0, len(frame), 3)]

    async def ask() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(*(
                client.post("/predict", json={"X": part.to_dict(orient="records")})
                for part in parts
            ))

    for part, response in zip(parts, asyncio.run(ask())):
        assert response.status_code == 200, server.log()
        assert response.json()["predict_result"] == pipeline.predict(part).tolist()
