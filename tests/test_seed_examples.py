"""The seeds' examples, run with only their imports changed (``import core as mlup``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx
import numpy
import pytest

import core as mlup
from core import constants
from core.empty import EmptyModel
from core.testing import free_port

pytestmark = pytest.mark.plugins
EXAMPLES = Path(__file__).parent.parent / "examples"


class MyModel:
    def predict(self, X):
        return X


def test_life_cycle_ml_load_and_load_model_settings():
    model = MyModel()
    up = mlup.UP(ml_model=model, conf=mlup.Config(auto_detect_predict_params=True))
    up.ml.load()
    assert up.ml.loaded
    objs_for_predict = [[1, 2, 3], [4, 5, 6]]
    assert up.predict_from(X=numpy.array(objs_for_predict)).tolist() == objs_for_predict

    up.conf.auto_detect_predict_params = False
    up.ml.load_model_settings()
    result = up.predict_from(data_for_predict=numpy.array(objs_for_predict))
    assert result.tolist() == objs_for_predict


def test_life_cycle_web_load_run_and_stop():
    up = mlup.UP(ml_model=MyModel())
    up.ml.load()
    objs_for_predict = [[1, 2, 3], [4, 5, 6]]
    assert up.predict(X=objs_for_predict) == objs_for_predict
    assert not up.web.loaded
    up.web.load()
    assert up.web.loaded
    up.conf.port = free_port()
    up.conf.host = "127.0.0.1"
    up.web.load()
    up.run_web_app(daemon=True)
    try:
        resp = httpx.post(f"http://127.0.0.1:{up.conf.port}/predict", json={"X": objs_for_predict})
        assert resp.json() == {"predict_result": objs_for_predict}
    finally:
        up.stop_web_app()


def test_web_app_customization_add_api_route():
    up = mlup.UP(ml_model=EmptyModel(), conf=mlup.Config(host="127.0.0.1", port=free_port()))
    up.ml.load()
    up.web.load()
    app = up.web.app

    def my_api_method():
        return {"custom": True}

    app.add_api_route("/my-api-method", my_api_method, methods=["GET"], name="my-api-method")
    up.run_web_app(daemon=True)
    try:
        assert httpx.get(f"http://127.0.0.1:{up.conf.port}/my-api-method").json() == {"custom": True}
    finally:
        up.stop_web_app()


def test_storages_page_disk_storage_with_file_mask(tmp_path):
    onnx_file = EXAMPLES / "onnx" / "model.onnx"
    up = mlup.UP(
        conf=mlup.Config(
            storage_type=constants.StorageType.disk,
            storage_kwargs={"path_to_files": str(onnx_file.parent), "file_mask": "model.onnx"},
        )
    )
    up.ml.load()
    result = up.predict(X=[[0.1] * 20])
    assert set(result) == {"label", "probabilities"}


@dataclasses.dataclass
class MyStorage(mlup.Storage):
    """The storages page's custom storage, as a dataclass with constructor settings."""

    password: str
    login: str = "default login"

    def load(self) -> list[Any]:
        assert self.password == "password from my storage"
        return [mlup.LoadedFile(obj=EmptyModel())]


def test_storages_page_custom_storage_by_dotted_path():
    up = mlup.UP(conf=mlup.Config(
        storage_type=f"{__name__}.MyStorage",
        storage_kwargs={"password": "password from my storage", "login": "not default login"},
    ))
    up.ml.load()
    assert up.predict(X=[[1]]) == [[1]]
