"""An MLComponent manifest whose model box is an S3 box serves as it is: the model file is
fetched from the bucket (moto's server) through the remote storage, unless the platform mounted
the box at the model's path."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from remote_support import S3

pytest.importorskip("core_mlcomponent")

FUNCTION = '''
import json


def inference(parameters, inputs, output_fields, model_key, model=None):
    """Scale x by the factor in the model file.

    :param inputs.x: numbers
    :type inputs.x: FP32
    :param outputs.scaled: x times the model's factor
    :type outputs.scaled: FP32
    :param outputs.model_key: the model file read
    :type outputs.model_key: str
    """
    if model is None:
        with open(model_key) as file:
            model = json.load(file)
    x = next(item for item in inputs if item["name"] == "x")
    return [{"name": "scaled", "datatype": "FP32", "shape": x["shape"],
             "data": [value * model["factor"] for value in x["data"]]},
            {"name": "model_key", "datatype": "str", "shape": [1], "data": [model_key]}], model
'''

SUB_PATH = "users/developer/file_groups/models"


def manifest(tmp_path: Path, mount: Path, name: str = "model.json") -> Path:
    functions = tmp_path / "functions"
    functions.mkdir(exist_ok=True)
    (functions / "boxed_functions.py").write_text(FUNCTION)
    path = tmp_path / "manifest.yaml"
    path.write_text(textwrap.dedent(f"""
        kind: MLComponent
        metadata: {{name: boxed}}
        spec:
          connectedBoxes:
            - name: model-box
              path: {mount}
              mountS3Box: {{subPath: {SUB_PATH}, s3BoxName: models}}
            - name: user-box
              copyS3Box: {{s3BoxName: users}}
          mlService:
            inference:
              fileExchange: {{fileBox: user-box, inferenceFilesPath: exchange}}
              model: {{modelBox: model-box, modelPath: {mount}/scaler/{name}}}
              entryPoint: {{pythonPath: {functions}, pythonFunction: boxed_functions.inference}}
    """))
    return path


def infer(server: Any) -> dict[str, Any]:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "data": [1, 2], "shape": [2]}]}
    answer = httpx.post(f"{server.url}/inference", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return {item["name"]: item["data"] for item in answer.json()["outputs"]}


def start(serve: Any, path: Path, s3: S3, cache: Path) -> Any:
    return serve(None, env={**s3.env, "CORE_CACHE_DIR": str(cache)},
                 command=[sys.executable, "-m", "core.cli", "serve", "--manifest", str(path),
                          "--host", "127.0.0.1", "--port", "{port}"])


def test_the_model_is_fetched_from_the_s3_box(s3: S3, serve: Any, tmp_path: Path,
                                              cache: Path) -> None:
    key = f"{SUB_PATH}/scaler/model.json"
    s3.put(key, json.dumps({"factor": 3}).encode())
    mount = tmp_path / "not-mounted"
    server = start(serve, manifest(tmp_path, mount), s3, cache)
    outputs = infer(server)
    assert outputs["scaled"] == [3.0, 6.0]
    [model_key] = outputs["model_key"]
    assert model_key.startswith(str(cache)) and model_key.endswith("/model.json")
    assert s3.gets("models", key) == 1
    assert f"fetched s3://models/{key} into" in server.log()


def test_a_mounted_box_is_used_as_it_is(s3: S3, serve: Any, tmp_path: Path, cache: Path) -> None:
    key = f"{SUB_PATH}/scaler/model.json"
    s3.put(key, json.dumps({"factor": 3}).encode())
    before = s3.gets("models", key)
    mount = tmp_path / "mounted"
    (mount / "scaler").mkdir(parents=True)
    (mount / "scaler" / "model.json").write_text(json.dumps({"factor": 5}))
    server = start(serve, manifest(tmp_path, mount), s3, cache)
    outputs = infer(server)
    assert outputs["scaled"] == [5.0, 10.0]
    assert outputs["model_key"] == [str(mount / "scaler" / "model.json")]
    assert s3.gets("models", key) == before
    assert "the model box is mounted" in server.log()


def test_a_missing_key_in_the_box_is_one_line(s3: S3, tmp_path: Path, cache: Path) -> None:
    from core.testing import Server

    server = Server(None, directory=tmp_path / "server",
                    env={**s3.env, "CORE_CACHE_DIR": str(cache)},
                    command=[sys.executable, "-m", "core.cli", "serve", "--manifest",
                             str(manifest(tmp_path, tmp_path / "empty", "absent.json")),
                             "--host", "127.0.0.1",
                             "--port", "{port}"])
    _, log = server.run_to_exit()
    assert (f"storage remote: no such bucket or key: s3://models/{SUB_PATH}/scaler/absent.json"
            in log), log
    assert "Traceback" not in log
