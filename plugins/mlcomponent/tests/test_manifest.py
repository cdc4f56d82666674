"""config_from_manifest: the translation, and one clear line for each mistake."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from core_mlcomponent.manifest import config_from_manifest, cpu_threads

from core.errors import ConfigError

GOOD = """
kind: MLComponent
metadata: {name: somename-mlcmp}
spec:
  image: {resourceLimits: {cpu: 500m, memory: 256M}}
  env:
    - {name: CUSTOM_PARAMETER_1, value: "3.14"}
  mlService:
    inference:
      fileExchange: {fileBox: user-box, inferenceFilesPath: /home/appname/users/tmp}
      model: {modelBox: model-box, modelPath: /home/path/to/model.joblib}
      entryPoint: {pythonPath: ., pythonFunction: modulename.predict.inference}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_seed_manifest(tmp_path: Path) -> None:
    conf = config_from_manifest(write(tmp_path, GOOD))
    assert conf.name == "somename-mlcmp"
    assert conf.storage_type == "mlcomponent"
    assert conf.max_thread_loop_workers == 1
    kwargs = conf.storage_kwargs
    assert kwargs["python_function"] == "modulename.predict.inference"
    assert kwargs["python_path"] == str(tmp_path)
    assert kwargs["model_key"] == "/home/path/to/model.joblib"
    assert kwargs["files_path"] == "/home/appname/users/tmp"
    assert kwargs["env"] == {"CUSTOM_PARAMETER_1": "3.14"}
    assert kwargs["max_models"] == 1


@pytest.mark.parametrize(("value", "threads"), [("500m", 1), ("2", 2), (2, 2), (1.5, 1), ("2500m", 2),
                                                ("0.25", 1), ("4000m", 4)])
def test_cpu_threads(value: object, threads: int) -> None:
    assert cpu_threads(value) == threads


@pytest.mark.parametrize(("old", "new", "message"), [
    ("pythonFunction: modulename.predict.inference", "pythonFunctio: x",
     "spec.mlService.inference.entryPoint.pythonFunction: missing"),
    ("pythonFunction: modulename.predict.inference", "pythonFunction: inference",
     "must be a dotted name"),
    ("modelPath: /home/path/to/model.joblib", "modelPath: 3",
     "spec.mlService.inference.model.modelPath: must be str, got int 3"),
    ("inferenceFilesPath: /home/appname/users/tmp", "inferenceFilesPath: ''",
     "spec.mlService.inference.fileExchange.inferenceFilesPath: is empty"),
    ("cpu: 500m", "cpu: lots", "spec.image.resourceLimits.cpu: must be a CPU quantity"),
    ("cpu: 500m", "cpu: 0m", "spec.image.resourceLimits.cpu: must be greater than 0"),
    ('{name: CUSTOM_PARAMETER_1, value: "3.14"}', "{value: 1}", "spec.env[0]: must be a mapping with a 'name'"),
    ("kind: MLComponent", "kind: APIComponent", "kind: must be 'MLComponent'"),
])
def test_mistakes_are_one_line_naming_the_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        config_from_manifest(path)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(str(path)) and message in text, text


def test_not_yaml_and_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="manifest not found"):
        config_from_manifest(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config_from_manifest(write(tmp_path, "a: [1, 2"))


BOXES = """
kind: MLComponent
spec:
  connectedBoxes:
    - name: model-box
      path: /home/path/to
      mountS3Box: {subPath: users/developer/file_groups/models, s3BoxName: mymodule-data-box}
    - name: user-box
      copyS3Box: {s3BoxName: users}
  mlService:
    inference:
      fileExchange: {fileBox: user-box, inferenceFilesPath: /tmp/exchange}
      model: {modelBox: MODEL_BOX, modelPath: MODEL_PATH}
      entryPoint: {pythonPath: ., pythonFunction: modulename.predict.inference}
"""


def boxes(tmp_path: Path, model_box: str = "model-box",
          model_path: str = "/home/path/to/model.joblib") -> Path:
    return write(tmp_path, BOXES.replace("MODEL_BOX", model_box).replace("MODEL_PATH", model_path))


@pytest.mark.parametrize(("model_path", "url"), [
    ("/home/path/to/model.joblib",
     "s3://mymodule-data-box/users/developer/file_groups/models/model.joblib"),
    ("/home/path/to/sub/model.onnx",
     "s3://mymodule-data-box/users/developer/file_groups/models/sub/model.onnx"),
    ("/home/path/to", "s3://mymodule-data-box/users/developer/file_groups/models"),
])
def test_an_s3_model_box_gives_the_model_url(tmp_path: Path, model_path: str, url: str) -> None:
    kwargs = config_from_manifest(boxes(tmp_path, model_path=model_path)).storage_kwargs
    assert kwargs["model_url"] == url
    assert kwargs["model_key"] == model_path


def test_a_copy_box_without_sub_path_is_the_bucket_root(tmp_path: Path) -> None:
    text = BOXES.replace("MODEL_BOX", "user-box").replace("MODEL_PATH", "/model.pkl")
    kwargs = config_from_manifest(write(tmp_path, text)).storage_kwargs
    assert kwargs["model_url"] == "s3://users/model.pkl"


def test_a_model_box_that_is_not_listed_or_not_s3_gives_no_url(tmp_path: Path) -> None:
    assert "model_url" not in config_from_manifest(write(tmp_path, GOOD)).storage_kwargs
    text = BOXES.replace("MODEL_BOX", "other").replace("MODEL_PATH", "/home/path/to/m.pkl")
    assert "model_url" not in config_from_manifest(write(tmp_path, text)).storage_kwargs


def test_a_relative_model_path_gives_no_url(tmp_path: Path) -> None:
    # a file next to the manifest, as in examples/mlcomponent: served from there
    kwargs = config_from_manifest(boxes(tmp_path, model_path="model/model.npz")).storage_kwargs
    assert "model_url" not in kwargs
    assert kwargs["model_key"] == str(tmp_path / "model" / "model.npz")


def test_a_model_path_outside_its_box_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"modelPath: '/elsewhere/m.pkl' is not under the path "
                                          r"'/home/path/to' of its model box 'model-box'"):
        config_from_manifest(boxes(tmp_path, model_path="/elsewhere/m.pkl"))


def test_an_s3_box_without_its_bucket_is_one_line(tmp_path: Path) -> None:
    text = BOXES.replace("s3BoxName: mymodule-data-box", "other: x").replace(
        "MODEL_BOX", "model-box").replace("MODEL_PATH", "/home/path/to/m.pkl")
    with pytest.raises(ConfigError, match=r"connectedBoxes\[0\]\.mountS3Box\.s3BoxName: missing"):
        config_from_manifest(write(tmp_path, text))
