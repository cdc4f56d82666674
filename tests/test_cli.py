"""The ``core`` command: ``validate``, ``serve`` (a config or a model path) and their errors,
run as a real subprocess; ``serve`` answers on a real port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.plugins
EXAMPLES = Path(__file__).parent.parent / "examples"
ONNX = EXAMPLES / "onnx" / "model.onnx"
PICKLE = EXAMPLES / "pickle" / "model.pkl"
ROW = [0.1 * i for i in range(20)]


def core(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, env={**os.environ, **(env or {})})


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_validate_a_config_that_will_load(tmp_path):
    result = core("validate", str(EXAMPLES / "onnx" / "config.toml"), cwd=EXAMPLES.parent)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "binarizer 'onnx'" in result.stdout


def test_validate_loads_the_model_and_names_the_request(tmp_path):
    result = core("validate", str(EXAMPLES / "pickle" / "config.toml"), cwd=EXAMPLES.parent)
    assert result.returncode == 0, result.stderr
    assert "loaded IrisLikeClassifier with binarizer 'pickle'; request: X)" in result.stdout


@pytest.mark.parametrize(("name", "content", "binarizer", "fragment"), [
    ("model.pkl", b"not a pickle", "pickle", "pickle binarizer: cannot unpickle model.pkl"),
    ("model.onnx", ONNX.read_bytes()[:100], "auto", "onnx binarizer: onnxruntime cannot load model.onnx"),
])
def test_validate_refuses_a_model_file_that_will_not_load(tmp_path, name, content, binarizer, fragment):
    (tmp_path / name).write_bytes(content)
    config = write(tmp_path / "c.toml", f'storage_type = "disk"\nstorage_kwargs = {{ path_to_files = "{name}" }}\n'
                                        f'binarization_type = "{binarizer}"\n')
    result = core("validate", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert result.stdout == ""
    last = result.stderr.splitlines()[-1]
    assert last.startswith("core: error: ") and fragment in last, result.stderr
    assert "Traceback" not in result.stderr

    quick = core("validate", "--no-load", str(config), cwd=tmp_path)
    assert quick.returncode == 0, quick.stderr
    assert "loaded" not in quick.stdout


def test_validate_auto_names_the_binarizers_the_settings_fit(tmp_path):
    config = write(tmp_path / "c.toml", f'storage_type = "disk"\nstorage_kwargs = {{ path_to_files = "{ONNX}" }}\n'
                                        'binarization_kwargs = { intra_op_num_threads = 1 }\n')
    result = core("validate", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "binarization_kwargs fit onnx)" in result.stdout


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('mdoe = "batching"\n', "unknown config key 'mdoe'; did you mean 'mode'?"),
        ('max_batch_size = "big"\n', "config key 'max_batch_size' must be int, got str 'big'"),
        ('storage_type = "disc"\n', "unknown storage 'disc' in storage_type; installed: disk, memory"),
        ('storage_type = "disk"\nstorage_kwargs = { path_to_files = "nope.onnx" }\n',
         "storage_kwargs.path_to_files 'nope.onnx' does not exist"),
        (f'storage_type = "disk"\nstorage_kwargs = {{ path_to_files = "{ONNX}", size = 1 }}\n',
         "unexpected keyword argument 'size'; it accepts: path_to_files, file_mask, need_load_file"),
        (f'storage_type = "disk"\nstorage_kwargs = {{ path_to_files = "{ONNX}" }}\nbinarization_type = "onx"\n',
         "unknown binarizer 'onx'"),
        (f'storage_type = "disk"\nstorage_kwargs = {{ path_to_files = "{ONNX}" }}\n'
         'binarization_kwargs = { intra_op_num_threads = "x" }\n',
         "binarization_kwargs fit no installed binarizer"),
        (f'storage_type = "disk"\nstorage_kwargs = {{ path_to_files = "{ONNX}" }}\nmode = "batch"\n',
         "unknown architecture 'batch'"),
        (f'storage_type = "disk"\nstorage_kwargs = {{ path_to_files = "{ONNX}" }}\n'
         'data_transformer_for_predict = "passthrough"\ndtype_for_predict = "float64"\n',
         "dtype_for_predict = 'float64' has no effect"),
        ('x = [\n', "not valid TOML"),
    ],
)
def test_validate_refuses_with_one_line(tmp_path, text, fragment):
    result = core("validate", str(write(tmp_path / "c.toml", text)), cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert result.stdout == ""
    assert result.stderr.startswith("core: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr


def test_validate_applies_the_environment_as_the_server_does(tmp_path):
    config = str(EXAMPLES / "onnx" / "config.toml")
    result = core("validate", "--no-load", config, cwd=EXAMPLES.parent, env={"CORE_MODE": "batching"})
    assert result.returncode == 0 and "mode 'batching'" in result.stdout, result.stderr
    result = core("validate", config, cwd=EXAMPLES.parent, env={"CORE_STORAGE_KWARGS": "{oops"})
    assert result.returncode == 1
    assert result.stderr.startswith("core: error: environment variable CORE_STORAGE_KWARGS: ")


def test_validate_a_missing_file(tmp_path):
    result = core("validate", "absent.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "core: error: config file not found: absent.toml\n"


@pytest.mark.parametrize(("model", "binarizer", "flags"),
                         [(ONNX, "onnx", []), (PICKLE, "pickle", ["--binarizer", "pickle"])])
def test_serve_a_model_path_with_defaults(serve, model, binarizer, flags):
    server = serve(None, command=[sys.executable, "-m", "core", "serve", str(model), *flags,
                                  "--host", "127.0.0.1", "--port", "{port}"])
    info = httpx.get(f"{server.url}/info").json()
    assert info["name"] == "model"
    assert info["model"]["binarization_type"] == binarizer
    answer = httpx.post(f"{server.url}/predict", json={"X": [ROW, ROW]})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predict_result"]["label"] if binarizer == "onnx"
               else answer.json()["predict_result"]) == 2


def test_serve_does_not_unpickle_a_file_the_config_does_not_vouch_for(tmp_path):
    """``auto`` recognises a pickle but loads it only when told to (a pickle runs code)."""
    result = core("serve", str(PICKLE), "--host", "127.0.0.1", "--port", "0", cwd=tmp_path)
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.endswith(
        "core: cannot start: binarization_type = 'auto' recognised model.pkl as a pickle file; reading one "
        "runs the code inside it, so core loads it only where the config says it is trusted: set "
        "binarization_type = 'pickle' (core serve: --binarizer pickle), or pin the file with "
        "binarization_kwargs.sha256"), result.stderr


def test_serve_a_config_file_with_overrides(serve, tmp_path):
    """The file, then the environment's CORE_<KEY>, then the command line's flags."""
    config = write(tmp_path / "c.toml", f'name = "from-file"\nport = 1\nmode = "worker_and_queue"\n'
                                        f'version = "0.0.1"\n'
                                        f'storage_type = "disk"\nstorage_kwargs = {{ path_to_files = "{ONNX}" }}\n')
    server = serve(None, command=[sys.executable, "-m", "core", "serve", str(config),
                                  "--host", "127.0.0.1", "--port", "{port}", "--mode", "batching"],
                   env={"CORE_VERSION": "2.0.0", "CORE_MODE": "directly_to_predict"})
    info = httpx.get(f"{server.url}/info").json()
    assert info["name"] == "from-file" and info["architecture"]["mode"] == "batching"
    assert info["version"] == "2.0.0"


def test_serve_a_path_that_does_not_exist(tmp_path):
    result = core("serve", "models/missing.onnx", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "core: error: models/missing.onnx: no such config file or model path\n"
