"""A small scikit-learn pipeline trained on a DataFrame, pickled, and real servers serving it
(``hypercorn core.app:app`` on 127.0.0.1, :mod:`core.testing`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pytest
from core.testing import server_fixture
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

#: ``serve(config)`` starts a :class:`core.testing.Server`; all are stopped at module end.
serve = server_fixture(scope="module")

CITIES = ["Oslo", "Rome", "Paris", "Oslo", "Rome", "Paris", "Oslo", "Rome", "Paris", "Oslo"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Ten people: a string column and two numeric ones, selected by name by the pipeline."""
    return pd.DataFrame({
        "city": CITIES,
        "age": [31, 45, 22, 60, 38, 51, 27, 44, 35, 58],
        "income": [52.0, 31.5, 28.0, 75.2, 40.1, 66.3, 33.3, 29.9, 47.5, 70.0],
    })


@pytest.fixture(scope="module")
def pipeline(frame: pd.DataFrame) -> Pipeline:
    """OneHotEncoder on ``city``; imputer + StandardScaler on ``age`` and ``income``; then
    LogisticRegression. Fitted on a DataFrame, so it has ``feature_names_in_``."""
    prep = ColumnTransformer([
        ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
    ])
    return Pipeline([("prep", prep), ("model", LogisticRegression())]).fit(
        frame, [0, 1, 0, 1, 1, 1, 0, 0, 1, 1]
    )


@pytest.fixture(scope="module")
def pickled(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any], Path]:
    """``pickled(obj)``: the path of a cloudpickle file holding ``obj``."""

    def write(obj: Any) -> Path:
        path = tmp_path_factory.mktemp("model") / "model.pkl"
        path.write_bytes(cloudpickle.dumps(obj))
        return path

    return write


@pytest.fixture(scope="module")
def model_path(pipeline: Pipeline, pickled: Callable[[Any], Path]) -> Path:
    return pickled(pipeline)


def _disk_config(path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "people",
        "storage_type": "disk",
        "storage_kwargs": {"path_to_files": path},
        "binarization_type": "pickle",
        "data_transformer_for_predict": "pandas",
        "data_transformer_for_predicted": "pandas",
        **extra,
    }


@pytest.fixture(scope="module")
def disk_config() -> Callable[..., dict[str, Any]]:
    """``disk_config(path, **settings)``: a config serving the pickle at ``path`` with the
    pandas transformer both ways."""
    return _disk_config
