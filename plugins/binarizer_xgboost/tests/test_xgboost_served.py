"""End to end: XGBoost JSON and UBJ model files served by a real ``hypercorn core.app:app``
(core-storage-disk + core-binarizer-xgboost, core-protocol-v2 installed) and asked over HTTP
with httpx: the answers are XGBoost's own predictions for the same rows."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# The disk storage finds the files and the V2 protocol adds its routes (the test extra).
import core_protocol_v2  # noqa: F401
import core_storage_disk  # noqa: F401
import httpx
import numpy as np
import pytest
import xgboost as xgb
from core.testing import Server

MODES = ["directly_to_predict", "worker_and_queue", "batching"]


def config(path: Path, **settings: Any) -> dict[str, Any]:
    return {"name": "gbm", "storage_type": "disk", "storage_kwargs": {"path_to_files": path},
            "binarization_type": "xgboost", **settings}


def predict(server: Server, rows: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", json={"X": rows}, timeout=30)


def as_json(array: np.ndarray) -> list[Any]:
    """Rows as JSON carries them: NaN is null."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in array]


def booster_predict(path: Path, rows: np.ndarray) -> np.ndarray:
    booster = xgb.Booster(model_file=str(path))
    return booster.predict(xgb.DMatrix(rows, feature_names=booster.feature_names))


def same(answer: Any, expected: np.ndarray) -> None:
    """XGBoost predicts float32: JSON carries each value's shortest float32 form, exactly."""
    np.testing.assert_array_equal(np.asarray(answer, dtype=np.float32), expected)


@pytest.mark.parametrize(("mode", "fmt"), [("directly_to_predict", "json"),
                                           ("worker_and_queue", "ubj"), ("batching", "json")])
def test_every_mode_answers_booster_predict(serve: Any, regression: dict[str, Path],
                                            rows: np.ndarray, mode: str, fmt: str) -> None:
    server = serve(config(regression[fmt], mode=mode, max_batch_wait=20))
    expected = booster_predict(regression[fmt], rows)
    answer = predict(server, as_json(rows))
    assert answer.status_code == 200, server.log()
    same(answer.json()["predict_result"], expected)

    async def many() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(
                client.post(f"{server.url}/predict", json={"X": as_json(rows[i:i + 2])})
                for i in range(0, len(rows), 2)
            ))

    answers = asyncio.run(many())  # batching merges these into fewer calls
    assert [r.status_code for r in answers] == [200] * 3
    same([v for r in answers for v in r.json()["predict_result"]], expected)


@pytest.mark.parametrize("fmt", ["json", "ubj"])
def test_auto_picks_xgboost(serve: Any, softprob: dict[str, Path], tmp_path: Path,
                            rows: np.ndarray, fmt: str) -> None:
    path = tmp_path / f"{fmt}.model"  # no telling name: the content decides
    path.write_bytes(softprob[fmt].read_bytes())
    server = serve(config(path, binarization_type="auto", binarization_kwargs={"nthread": 1}))
    info = httpx.get(f"{server.url}/info").json()
    assert info["model"]["binarization_type"] == "xgboost"
    assert info["model"]["type"] == "XGBoostModel"
    assert f"chose 'xgboost' for {fmt}.model (the file starts like an XGBoost" in server.log()
    answer = predict(server, as_json(rows))
    same(answer.json()["predict_result"], booster_predict(path, rows))


def test_a_wrong_row_width_is_a_422(serve: Any, regression: dict[str, Path]) -> None:
    server = serve(config(regression["ubj"]))
    answer = predict(server, [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0]])
    assert answer.status_code == 422
    [detail] = answer.json()["detail"]
    assert detail["loc"] == ["body", "X", 1]
    assert detail["msg"] == ("expected 4 values (the model was fitted on 4 features "
                             "(n_features_in_)), got 3")
    strings = predict(server, [[1.0, "a", 3.0, 4.0]])
    assert strings.status_code == 422, strings.text
    assert "rows must hold numbers" in strings.json()["detail"][0]["msg"]
    assert "Traceback" not in server.log()


def test_named_features_take_dict_rows(serve: Any, named: dict[str, Path], rows: np.ndarray,
                                       make: Any) -> None:
    server = serve(config(named["json"]))
    records = [dict(reversed(list(zip(make.NAMES, row)))) for row in as_json(rows)]
    answer = predict(server, records)
    assert answer.status_code == 200, answer.text
    same(answer.json()["predict_result"], booster_predict(named["json"], rows))
    info = httpx.get(f"{server.url}/info").json()
    assert info["model"]["arguments"][0]["columns"] == make.NAMES


def test_classifier_wrapper(serve: Any, classifier_files: dict[str, Path], rows: np.ndarray,
                            classifier: xgb.XGBClassifier) -> None:
    settings = {"wrapper": "XGBClassifier", "nthread": 1}
    labels = serve(config(classifier_files["ubj"], binarization_kwargs=settings))
    answer = predict(labels, as_json(rows))
    assert answer.status_code == 200, labels.log()
    assert answer.json()["predict_result"] == classifier.predict(rows).tolist()
    probabilities = serve(config(classifier_files["json"], binarization_kwargs=settings,
                                 predict_method_name="predict_proba"))
    answer = predict(probabilities, as_json(rows))
    same(answer.json()["predict_result"], classifier.predict_proba(rows))


def v2_rows(rows: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "X", "datatype": "FP32", "shape": list(rows.shape),
                        "data": rows.ravel().tolist()}]}


@pytest.mark.parametrize("mode", ["directly_to_predict", "batching"])
def test_v2_infer(serve: Any, binary: dict[str, Path], rows: np.ndarray, mode: str) -> None:
    server = serve(config(binary["ubj"], mode=mode))
    clean = np.nan_to_num(rows).astype(np.float32)  # V2's JSON data carries no NaN
    answer = httpx.post(f"{server.url}/v2/models/gbm/infer", json=v2_rows(clean), timeout=30)
    assert answer.status_code == 200, answer.text
    [output] = answer.json()["outputs"]
    assert output["name"] == "predict" and output["datatype"] == "FP32"
    assert output["shape"] == [len(rows)]
    same(output["data"], booster_predict(binary["ubj"], clean))
    wrong = httpx.post(f"{server.url}/v2/models/gbm/infer", json=v2_rows(clean[:, :3]), timeout=30)
    assert wrong.status_code == 400
    assert "expected 4 features per row (the model's), got 3" in wrong.json()["error"]


@pytest.mark.parametrize("fmt", ["json", "ubj"])
def test_a_truncated_model_is_one_line_at_startup(regression: dict[str, Path], tmp_path: Path,
                                                  fmt: str) -> None:
    content = regression[fmt].read_bytes()
    (tmp_path / f"model.{fmt}").write_bytes(content[: len(content) // 2])
    (tmp_path / "c.toml").write_text(f'storage_type = "disk"\n'
                                     f'storage_kwargs = {{ path_to_files = "model.{fmt}" }}\n'
                                     f'binarization_type = "auto"\n')
    result = subprocess.run([sys.executable, "-m", "core", "validate", "c.toml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if not k.startswith("CORE_")})
    assert result.returncode == 1, result.stdout
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"core: error: xgboost binarizer: XGBoost cannot load model.{fmt}: "), \
        result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("target", ["model.json", "its folder"])
def test_core_serve_a_json_model_or_its_folder(serve: Any, regression: dict[str, Path],
                                               rows: np.ndarray, tmp_path: Path,
                                               target: str) -> None:
    """``core serve model.json`` serves XGBoost's JSON model (the binarizer recognises it, so
    it is not read as a config), and ``core serve FOLDER`` finds it beside other files (the
    disk storage's default takes the one file named like a model format)."""
    folder = tmp_path / target.replace(" ", "-")
    folder.mkdir()
    model = folder / "model.json"
    model.write_bytes(regression["json"].read_bytes())
    (folder / "README.md").write_text("the regression model")
    path = model if target == "model.json" else folder
    server = serve(None, command=[sys.executable, "-m", "core", "serve", str(path),
                                  "--host", "127.0.0.1", "--port", "{port}"])
    info = httpx.get(f"{server.url}/info").json()
    assert info["model"]["binarization_type"] == "xgboost"
    answer = predict(server, as_json(rows))
    assert answer.status_code == 200, server.log()
    same(answer.json()["predict_result"], booster_predict(model, rows))


def test_a_json_config_is_still_a_config(regression: dict[str, Path], tmp_path: Path) -> None:
    """With the XGBoost binarizer installed, a ``.json`` that no binarizer recognises is read as
    a config, and its mistakes are the config's one line."""
    config_file = tmp_path / "service.json"
    config_file.write_text(f'{{"name": "gbm-json", "storage_type": "disk", "storage_kwargs": '
                           f'{{"path_to_files": "{regression["json"]}"}}}}')
    result = subprocess.run([sys.executable, "-m", "core", "validate", str(config_file)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "loaded XGBoostModel with binarizer 'xgboost'" in result.stdout
    config_file.write_text('{"name": "gbm-json", "storage_typ": "disk"}')
    result = subprocess.run([sys.executable, "-m", "core", "validate", str(config_file)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr == (f"core: error: {config_file}: unknown config key 'storage_typ'; "
                             "did you mean 'storage_type'?\n")


def test_a_damaged_model_stops_start_up_instead_of_the_first_request(regression: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    """Served as it is, this file would load and then kill the worker (SIGSEGV) at its first
    prediction, and every replacement after it: start-up refuses it, in one line, exit 1."""
    model = json.loads(regression["json"].read_text())
    model["learner"]["gradient_booster"]["model"]["trees"][0]["left_children"][0] = 10**6
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model))
    command = [sys.executable, "-m", "core", "serve", str(path), "--port", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].endswith(
        "core: cannot start: xgboost binarizer: model.json is damaged: tree 0 names a child "
        "outside its 15 nodes; XGBoost would crash the server predicting with it. Save the "
        "model again from the training code (save_model)"), result.stderr
    assert "Traceback" not in result.stderr
