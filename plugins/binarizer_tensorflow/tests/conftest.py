"""A tiny Keras model built here (fixed seed, two Dense layers), saved in every format the
binarizer reads: ``.keras``, legacy ``.h5``, a SavedModel folder (``model.export``) and a zip
of that folder. Real servers (``hypercorn core.app:app``, :mod:`core.testing`) serve them."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from core.testing import server_fixture

#: ``serve(config)`` starts a :class:`core.testing.Server`; all are stopped at module end. A
#: server imports TensorFlow as it starts: seconds, more on a busy machine.
serve = server_fixture(scope="module", timeout=600,
                       hypercorn_args=["--config", str(Path(__file__).parent / "hypercorn.toml")])

#: Three rows of the model's four features.
ROWS = np.array(
    [[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0], [3.0, 0.0, -2.0, 1.5]], dtype=np.float32
)


def build_model(seed: int = 7) -> Any:
    """features float32[None, 4] -> Dense(8, relu) -> probabilities float32[None, 3] (softmax)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(hidden)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.fixture(scope="session")
def rows() -> np.ndarray[Any, Any]:
    """:data:`ROWS`: three rows of the model's four features."""
    return ROWS


@pytest.fixture(scope="session")
def keras_model() -> Any:
    return build_model()


@pytest.fixture(scope="session")
def expected(keras_model: Any) -> np.ndarray[Any, Any]:
    """The model's own predictions for :data:`ROWS`."""
    return np.asarray(keras_model(ROWS, training=False))


@pytest.fixture(scope="session")
def saved(keras_model: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The model in each format: ``keras``, ``h5``, ``saved_model`` (the folder's
    saved_model.pb, as the disk storage hands it over), ``folder`` and ``zip``."""
    folder = tmp_path_factory.mktemp("models")
    keras_model.save(folder / "model.keras")
    with warnings.catch_warnings():  # Keras says HDF5 is legacy: that is what is tested
        warnings.simplefilter("ignore")
        keras_model.save(folder / "model.h5")
    keras_model.export(str(folder / "export"), verbose=False)
    archive = shutil.make_archive(str(folder / "export"), "zip", root_dir=folder, base_dir="export")
    return {
        "keras": folder / "model.keras",
        "h5": folder / "model.h5",
        "saved_model": folder / "export" / "saved_model.pb",
        "folder": folder / "export",
        "zip": Path(archive),
    }
