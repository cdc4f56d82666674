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
