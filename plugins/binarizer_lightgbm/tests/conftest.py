"""Tiny LightGBM models trained on generated data (fixed seeds) and saved as text model files,
and real servers serving them (``hypercorn core.app:app`` on 127.0.0.1, :mod:`core.testing`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from core.testing import server_fixture

#: ``serve(config)`` starts a :class:`core.testing.Server`; all are stopped at module end.
serve = server_fixture(scope="module")

FEATURES = 4
NAMES = ["age", "income", "height", "weight"]
CLASSES = ["cat", "dog", "eel"]
#: LightGBM's settings for tiny, quick, reproducible models.
QUIET = {"verbose": -1, "num_threads": 1, "seed": 0, "deterministic": True, "min_data_in_leaf": 5}


def data(rows: int = 120, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, FEATURES))


def target(X: np.ndarray) -> np.ndarray:
    return X @ np.array([1.5, -2.0, 0.5, 3.0]) + np.sin(3 * X[:, 0])


def train(objective: str, labels: np.ndarray, *, feature_name: Any = "auto",
          **params: Any) -> lgb.Booster:
    dataset = lgb.Dataset(data(), labels, feature_name=feature_name)
    return lgb.train({"objective": objective, **QUIET, **params}, dataset, num_boost_round=8)


def save(booster: lgb.Booster, path: Path) -> Path:
    booster.save_model(str(path))
    return path


class Make:
    """The helpers above, for the test modules (which cannot import this conftest)."""

    FEATURES = FEATURES
    NAMES = NAMES
    CLASSES = CLASSES
    data = staticmethod(data)
    target = staticmethod(target)
    train = staticmethod(train)
    save = staticmethod(save)


@pytest.fixture(scope="session")
def make() -> type[Make]:
    """``make.data()``, ``make.train(...)``, ``make.CLASSES``...: the helpers of conftest."""
    return Make


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """Rows the models did not see, one of them holding a missing value (NaN)."""
    X = data(6, seed=1)
    X[2, 1] = np.nan
    return X


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lightgbm")


@pytest.fixture(scope="module")
def regression(folder: Path) -> Path:
    """A regression booster on unnamed features (LightGBM names them Column_0...)."""
    return save(train("regression", target(data())), folder / "regression.txt")


@pytest.fixture(scope="module")
def named(folder: Path) -> Path:
    """A regression booster trained with feature names of its own."""
    return save(train("regression", target(data()), feature_name=NAMES), folder / "named.txt")


@pytest.fixture(scope="module")
def binary(folder: Path) -> Path:
    return save(train("binary", (target(data()) > 0).astype(int)), folder / "binary.txt")


@pytest.fixture(scope="module")
def classifier() -> lgb.LGBMClassifier:
    """scikit-learn's LGBMClassifier on three string classes."""
    X = data()
    labels = np.asarray(CLASSES)[np.digitize(target(X), [-1.0, 1.0])]
    return lgb.LGBMClassifier(n_estimators=8, verbose=-1, n_jobs=1, random_state=0,
                              min_child_samples=5).fit(X, labels)


@pytest.fixture(scope="module")
def multiclass(classifier: lgb.LGBMClassifier, folder: Path) -> Path:
    return save(classifier.booster_, folder / "multiclass.txt")


@pytest.fixture(scope="module")
def regressor() -> lgb.LGBMRegressor:
    return lgb.LGBMRegressor(n_estimators=8, verbose=-1, n_jobs=1, random_state=0,
                             min_child_samples=5).fit(data(), target(data()))
