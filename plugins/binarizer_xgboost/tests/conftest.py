"""Tiny XGBoost models trained on generated data (fixed seeds), saved as JSON and UBJ, and real
servers serving them (``hypercorn core.app:app`` on 127.0.0.1, :mod:`core.testing`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from core.testing import server_fixture

#: ``serve(config)`` starts a :class:`core.testing.Server`; all are stopped at module end.
serve = server_fixture(scope="module")

FEATURES = 4
NAMES = ["age", "income", "height", "weight"]
#: XGBoost's settings for tiny, quick, reproducible models.
QUIET = {"nthread": 1, "seed": 0, "max_depth": 3, "verbosity": 0}


def data(rows: int = 120, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, FEATURES))


def target(X: np.ndarray) -> np.ndarray:
    return X @ np.array([1.5, -2.0, 0.5, 3.0]) + np.sin(3 * X[:, 0])


def three_classes(X: np.ndarray) -> np.ndarray:
    return np.digitize(target(X), [-1.0, 1.0])


def train(objective: str, labels: np.ndarray, *, feature_names: Any = None,
          **params: Any) -> xgb.Booster:
    matrix = xgb.DMatrix(data(), labels, feature_names=feature_names)
    return xgb.train({"objective": objective, **QUIET, **params}, matrix, num_boost_round=8)


class Make:
    """The helpers above, for the test modules (which cannot import this conftest)."""

    FEATURES = FEATURES
    NAMES = NAMES
    data = staticmethod(data)
    target = staticmethod(target)
    three_classes = staticmethod(three_classes)
    train = staticmethod(train)


@pytest.fixture(scope="session")
def make() -> type[Make]:
    """``make.data()``, ``make.train(...)``, ``make.NAMES``...: the helpers of conftest."""
    return Make


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """Rows the models did not see, one of them holding a missing value (NaN)."""
    X = data(6, seed=1)
    X[2, 1] = np.nan
    return X


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xgboost")


def saved(model: Any, folder: Path, name: str) -> dict[str, Path]:
    """``{"json": path, "ubj": path}``: the model saved in both formats."""
    paths = {}
    for fmt in ("json", "ubj"):
        paths[fmt] = folder / f"{name}.{fmt}"
        model.save_model(str(paths[fmt]))
    return paths


@pytest.fixture(scope="module")
def regression(folder: Path) -> dict[str, Path]:
    return saved(train("reg:squarederror", target(data())), folder, "regression")


@pytest.fixture(scope="module")
def named(folder: Path) -> dict[str, Path]:
    """A regression booster trained with feature names."""
    return saved(train("reg:squarederror", target(data()), feature_names=NAMES), folder, "named")


@pytest.fixture(scope="module")
def binary(folder: Path) -> dict[str, Path]:
    return saved(train("binary:logistic", (target(data()) > 0).astype(int)), folder, "binary")


@pytest.fixture(scope="module")
def softprob(folder: Path) -> dict[str, Path]:
    booster = train("multi:softprob", three_classes(data()), num_class=3)
    return saved(booster, folder, "softprob")


@pytest.fixture(scope="module")
def classifier() -> xgb.XGBClassifier:
    """scikit-learn's XGBClassifier on three classes."""
    return xgb.XGBClassifier(n_estimators=8, max_depth=3, n_jobs=1, random_state=0).fit(
        data(), three_classes(data()))


@pytest.fixture(scope="module")
def classifier_files(classifier: xgb.XGBClassifier, folder: Path) -> dict[str, Path]:
    return saved(classifier, folder, "classifier")


@pytest.fixture(scope="module")
def regressor() -> xgb.XGBRegressor:
    return xgb.XGBRegressor(n_estimators=8, max_depth=3, n_jobs=1, random_state=0).fit(
        data(), target(data()))


@pytest.fixture(scope="module")
def regressor_files(regressor: xgb.XGBRegressor, folder: Path) -> dict[str, Path]:
    return saved(regressor, folder, "regressor")
