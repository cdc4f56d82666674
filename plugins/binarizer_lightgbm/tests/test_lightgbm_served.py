"""End to end: LightGBM text model files served by a real ``hypercorn core.app:app``
(core-storage-disk + core-binarizer-lightgbm, core-protocol-v2 installed) and asked over HTTP
with httpx: the answers are LightGBM's own predictions for the same rows."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# The disk storage finds the files and the V2 protocol adds its routes (the test extra).
import core_protocol_v2  # noqa: F401
import core_storage_disk  # noqa: F401
import httpx
import lightgbm as lgb
import numpy as np
import pytest
from core.testing import Server

MODES = ["directly_to_predict", "worker_and_queue", "batching"]


def config(path: Path, **settings: Any) -> dict[str, Any]:
    return {"name": "gbm", "storage_type": "disk", "storage_kwargs": {"path_to_files": path},
            "binarization_type": "lightgbm", **settings}


def predict(server: Server, rows: Any, path: str = "/predict") -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json={"X": rows}, timeout=30)


def as_json(array: np.ndarray) -> list[Any]:
    """Rows as JSON carries them: NaN is null."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in array]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_answers_booster_predict(serve: Any, regression: Path, rows: np.ndarray,
                                            mode: str) -> None:
    server = serve(config(regression, mode=mode, max_batch_wait=20))
    expected = lgb.Booster(model_file=str(regression)).predict(rows).tolist()
    answer = predict(server, as_json(rows))
    assert answer.status_code == 200, server.log()
    assert answer.json()["predict_result"] == expected

    async def many() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(
                client.post(f"{server.url}/predict", json={"X": as_json(rows[i:i + 2])})
                for i in range(0, len(rows), 2)
            ))

    answers = asyncio.run(many())  # batching merges these into fewer calls
    assert [r.status_code for r in answers] == [200] * 3
    assert [v for r in answers for v in r.json()["predict_result"]] == expected


def test_auto_picks_lightgbm(serve: Any, regression: Path, tmp_path: Path,
                             rows: np.ndarray) -> None:
    path = tmp_path / "model.bin"  # no telling name: the content decides
    path.write_bytes(regression.read_bytes())
    server = serve(config(path, binarization_type="auto"))
    info = httpx.get(f"{server.url}/info").json()
    assert info["model"]["binarization_type"] == "lightgbm"
    assert info["model"]["type"] == "LightGBMModel"
    assert "chose 'lightgbm' for model.bin (the file starts like a LightGBM" in server.log()
    answer = predict(server, as_json(rows))
    expected = lgb.Booster(model_file=str(path)).predict(rows).tolist()
    assert answer.json()["predict_result"] == expected


def test_a_wrong_row_width_is_a_422(serve: Any, regression: Path) -> None:
    server = serve(config(regression))
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


def test_named_features_take_dict_rows(serve: Any, named: Path, rows: np.ndarray,
                                       make: Any) -> None:
    server = serve(config(named))
    records = [dict(reversed(list(zip(make.NAMES, row)))) for row in as_json(rows)]
    answer = predict(server, records)
    assert answer.status_code == 200, answer.text
    expected = lgb.Booster(model_file=str(named)).predict(rows).tolist()
    assert answer.json()["predict_result"] == expected
    info = httpx.get(f"{server.url}/info").json()
    assert info["model"]["arguments"][0]["columns"] == make.NAMES
    missing = predict(server, [{"age": 1.0}])
    assert missing.status_code == 422
    assert {tuple(d["loc"]) for d in missing.json()["detail"]} == {
        ("body", "X", 0, name) for name in make.NAMES[1:]}


def test_classifier_wrapper(serve: Any, multiclass: Path, rows: np.ndarray,
                            classifier: lgb.LGBMClassifier, make: Any) -> None:
    settings = {"wrapper": "LGBMClassifier", "classes": make.CLASSES, "num_threads": 1}
    labels = serve(config(multiclass, binarization_kwargs=settings))
    answer = predict(labels, as_json(rows))
    assert answer.status_code == 200, labels.log()
    assert answer.json()["predict_result"] == classifier.predict(rows).tolist()
    probabilities = serve(config(multiclass, binarization_kwargs=settings,
                                 predict_method_name="predict_proba"))
    answer = predict(probabilities, as_json(rows))
    assert answer.json()["predict_result"] == classifier.predict_proba(rows).tolist()


def v2_rows(rows: np.ndarray, name: str = "X") -> dict[str, Any]:
    return {"inputs": [{"name": name, "datatype": "FP64", "shape": list(rows.shape),
                        "data": rows.ravel().tolist()}]}


@pytest.mark.parametrize("mode", ["directly_to_predict", "batching"])
def test_v2_infer(serve: Any, binary: Path, rows: np.ndarray, mode: str) -> None:
    server = serve(config(binary, mode=mode))
    clean = np.nan_to_num(rows)  # V2's JSON data carries no NaN
    answer = httpx.post(f"{server.url}/v2/models/gbm/infer", json=v2_rows(clean), timeout=30)
    assert answer.status_code == 200, answer.text
    [output] = answer.json()["outputs"]
    assert output["name"] == "predict" and output["datatype"] == "FP64"
    assert output["shape"] == [len(rows)]
    assert output["data"] == lgb.Booster(model_file=str(binary)).predict(clean).tolist()
    wrong = httpx.post(f"{server.url}/v2/models/gbm/infer", json=v2_rows(clean[:, :3]), timeout=30)
    assert wrong.status_code == 400
    assert "expected 4 features per row (the model's), got 3" in wrong.json()["error"]
    meta = httpx.get(f"{server.url}/v2/models/gbm").json()
    assert [i["name"] for i in meta["inputs"]] == ["X"]


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_a_truncated_model_is_one_line_at_startup(regression: Path, tmp_path: Path,
                                                  cut: float) -> None:
    content = regression.read_bytes()
    (tmp_path / "model.txt").write_bytes(content[: int(len(content) * cut)])
    (tmp_path / "c.toml").write_text('storage_type = "disk"\n'
                                     'storage_kwargs = { path_to_files = "model.txt" }\n'
                                     'binarization_type = "auto"\n')
    result = subprocess.run([sys.executable, "-m", "core", "validate", "c.toml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if not k.startswith("CORE_")})
    assert result.returncode == 1, result.stdout
    last = result.stderr.splitlines()[-1]
    assert last.startswith("core: error: lightgbm binarizer: model.txt is not a complete "
                           "LightGBM model, truncated or damaged: no '"), result.stderr
    assert "Traceback" not in result.stderr
