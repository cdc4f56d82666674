from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from core.errors import ConfigError
from core.ml import build
from core.testing import StorageContract

from core_storage_memory import MemoryStorage


class Doubler:
    def predict(self, X: list[list[float]]) -> list[list[float]]:
        return [[2 * value for value in row] for row in X]


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An importable package ``served_models_<id>`` with a model object in ``models``."""
    name = f"served_models_{abs(hash(tmp_path)) % 10**8}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(
        textwrap.dedent(
            """
            class Model:
                def predict(self, X):
                    return X

            class Registry:
                pass

            model = Model()
            registry = Registry()
            registry.best = model
            nothing = None
            """
        )
    )
    (package / "broken.py").write_text("raise RuntimeError('no GPU here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


class TestMemoryStorageContract(StorageContract):
    name = "memory"

    @pytest.fixture
    def storage(self) -> MemoryStorage:
        return MemoryStorage(model=Doubler())


class TestImportedObjectContract(StorageContract):
    name = "memory"

    @pytest.fixture
    def storage(self, module: str) -> MemoryStorage:
        return MemoryStorage(object=f"{module}.models:model")


def test_model_object_is_handed_over_as_is() -> None:
    model = Doubler()
    [file] = MemoryStorage(model=model).load()
    assert file.obj is model
    assert file.path is None and file.raw_data is None
    assert file.display_name == "Doubler"


@pytest.mark.parametrize("attribute", [".models:model", ".models.model", ".models:registry.best"])
def test_object_is_imported(module: str, attribute: str) -> None:
    storage = MemoryStorage(object=module + attribute)
    storage.check()
    [file] = storage.load()
    assert type(file.obj).__name__ == "Model"
    assert file.display_name == "Model"
    assert file.obj is sys.modules[f"{module}.models"].model


def test_neither_model_nor_object_says_what_to_pass() -> None:
    with pytest.raises(ConfigError) as caught:
        MemoryStorage()
    assert "ml_model=" in str(caught.value) and "storage_kwargs.object" in str(caught.value)


def test_both_model_and_object_is_refused() -> None:
    with pytest.raises(ConfigError, match="keep one"):
        MemoryStorage(model=Doubler(), object="x:y")


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            "no_such_module_for_core_tests:model",
            "cannot import module 'no_such_module_for_core_tests'",
        ),
        ("{module}.models:missing", "'{module}.models' has no attribute 'missing'"),
        ("{module}.models:registry.worst", "'{module}.models.registry' has no attribute 'worst'"),
        ("{module}.broken:model", "raised RuntimeError: no GPU here"),
        ("{module}.models:Model", "is a class, not a model object"),
        ("{module}.models:nothing", "is None"),
        ("justaname", "write it as 'package.module:attribute'"),
    ],
)
def test_import_problems_are_one_line_config_errors(module: str, spec: str, match: str) -> None:
    spec = spec.format(module=module)
    storage = MemoryStorage(object=spec)  # importing waits for load() / check()
    for call in (storage.check, storage.load):
        with pytest.raises(ConfigError) as caught:
            call()
        message = str(caught.value)
        assert match.format(module=module) in message
        assert repr(spec) in message and "\n" not in message


@pytest.mark.parametrize("spec", [3, "", ":", "a:b:c"])
def test_malformed_object_setting(spec: Any) -> None:
    with pytest.raises(ConfigError, match=r"must be 'package\.module:attribute'"):
        MemoryStorage(object=spec)


def test_unknown_setting_lists_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        build("storage", MemoryStorage, {"model": Doubler(), "path": "x"}, "storage_kwargs")
    assert "path" in str(caught.value) and "model, object" in str(caught.value)


def test_up_serves_an_object_in_memory() -> None:
    from core.up import UP

    up = UP(ml_model=Doubler())
    up.ml.load()
    assert up.predict(X=[[1, 2], [3, 4]]) == [[2, 4], [6, 8]]


def test_up_serves_an_imported_object(module: str) -> None:
    from core.config import Config
    from core.up import UP

    conf = Config(storage_type="memory", storage_kwargs={"object": f"{module}.models:model"})
    up = UP(conf=conf)
    up.ml.load()
    assert np.asarray(up.predict(X=[[1, 2]])).tolist() == [[1, 2]]
