"""The ``core`` command: ``validate``, ``serve`` (a config or a model path) and their errors,
run as a real subprocess; ``serve`` answers on a real port. Plugins add commands and options
through the command-line hooks (real plugin distributions, installed for the test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from test_plugins import install_plugin

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


@pytest.mark.plugins
def test_validate_a_config_that_will_load(tmp_path):
    result = core("validate", str(EXAMPLES / "onnx" / "config.toml"), cwd=EXAMPLES.parent)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "binarizer 'onnx'" in result.stdout


@pytest.mark.plugins
def test_validate_loads_the_model_and_names_the_request(tmp_path):
    result = core("validate", str(EXAMPLES / "pickle" / "config.toml"), cwd=EXAMPLES.parent)
    assert result.returncode == 0, result.stderr
    assert "loaded IrisLikeClassifier with binarizer 'pickle'; request: X)" in result.stdout


@pytest.mark.plugins
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


@pytest.mark.plugins
def test_validate_auto_names_the_binarizers_the_settings_fit(tmp_path):
    config = write(tmp_path / "c.toml", f'storage_type = "disk"\nstorage_kwargs = {{ path_to_files = "{ONNX}" }}\n'
                                        'binarization_kwargs = { intra_op_num_threads = 1 }\n')
    result = core("validate", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "binarization_kwargs fit onnx)" in result.stdout


@pytest.mark.plugins
@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('mdoe = "batching"\n', "unknown config key 'mdoe'; did you mean 'mode'?"),
        ('max_batch_size = "big"\n', "config key 'max_batch_size' must be int, got str 'big'"),
        ('storage_type = "disc"\n', "unknown storage 'disc' in storage_type; installed: disk, memory"),
        ('storage_type = "disk"\nstorage_kwargs = { path_to_files = "nope.onnx" }\n',
         "storage_kwargs.path_to_files 'nope.onnx' does not exist"),
        (f'storage_type = "disk"\nstorage_kwargs = {{ path_to_files = "{ONNX}", size = 1 }}\n',
         "unexpected keyword argument 'size'; it accepts: path_to_files, file_mask, files_mask, need_load_file"),
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


@pytest.mark.plugins
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


@pytest.mark.plugins
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


@pytest.mark.plugins
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


@pytest.mark.plugins
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


# ---------------------------------------------------------------------------- plugins' commands and options

MLCOMPONENT_MANIFEST = EXAMPLES / "mlcomponent" / "manifest.yaml"
NO_PLUGINS = {"CORE_LOAD_PLUGINS": ""}


def test_without_the_plugin_manifest_is_one_line_naming_the_package(tmp_path):
    assert "--manifest" not in core("serve", "--help", cwd=tmp_path, env=NO_PLUGINS).stdout
    for args in (["serve", "--manifest", "m.yaml"], ["serve", "--manifest=m.yaml", "--port", "8011"],
                 ["validate", "--manifest", "m.yaml"]):
        result = core(*args, cwd=tmp_path, env=NO_PLUGINS)
        assert result.returncode == 2
        assert result.stderr == "core: error: --manifest needs the MLComponent plugin: pip install core-mlcomponent\n"
    result = core("serve", "--manifestt", "m.yaml", cwd=tmp_path, env=NO_PLUGINS)  # anything else: argparse
    assert result.returncode == 2 and "unrecognized arguments: --manifestt" in result.stderr


@pytest.mark.plugins
def test_the_mlcomponent_plugin_adds_manifest_to_serve_and_validate(tmp_path):
    help_text = core("serve", "--help", cwd=tmp_path).stdout
    assert "--manifest FILE" in help_text and "an MLComponent manifest (YAML)" in help_text
    result = core("validate", "--manifest", str(MLCOMPONENT_MANIFEST), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{MLCOMPONENT_MANIFEST}: ok (storage 'mlcomponent'")
    result = core("serve", str(ONNX), "--manifest", str(MLCOMPONENT_MANIFEST), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"core: error: {ONNX} and --manifest both say what to serve; give one\n"
    result = core("validate", "--manifest", "absent.yaml", cwd=tmp_path)
    assert result.stderr == "core: error: absent.yaml: manifest not found\n"


CLI_PLUGIN = """
    import attrs, core
    from core.errors import ConfigError

    @attrs.define(kw_only=True)
    class ConstantStorage(core.Storage):
        hands_over_objects = True  # a model object: no binarizer needed
        factor: float

        def load(self):
            factor = self.factor
            class Model:
                def predict(self, X):
                    return [[v * factor for v in row] for row in X]
            return [core.LoadedFile(obj=Model(), name="constant")]

    def hello(args):
        if not args.name.strip():
            raise ConfigError("hello: give a name")
        print(f"hello {args.name}")
        return 0

    @core.hookimpl
    def register_storages(register):
        register("constant", ConstantStorage)

    @core.hookimpl
    def register_commands(commands):
        command = commands.add_parser("hello", help="greet someone")
        command.add_argument("name")
        command.set_defaults(func=hello)

    @core.hookimpl
    def register_serve_options(parser):
        parser.add_argument("--constant", type=float, metavar="FACTOR",
                            help="serve a model that multiplies by FACTOR")

    @core.hookimpl
    def config_from_options(options):
        if options.constant is None:
            return None
        return core.Config(name="constant", storage_type="constant",
                           storage_kwargs={"factor": options.constant})
"""


def run_core(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``core ARGS`` with only the plugins installed in ``site`` (none of the environment's)."""
    return core(*args, cwd=cwd, env={"PYTHONPATH": str(site), "CORE_LOAD_PLUGINS": "cli-plugin,clash"})


def test_a_plugin_adds_a_command_and_options_that_become_the_config(tmp_path, serve):
    site = install_plugin(tmp_path, "core-cli-plugin", "cli-plugin", CLI_PLUGIN)
    assert "hello" in run_core(site, "--help", cwd=tmp_path).stdout
    result = run_core(site, "hello", "world", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "hello world\n"), result.stderr
    result = run_core(site, "hello", " ", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (1, "core: error: hello: give a name\n")

    assert "--constant FACTOR" in run_core(site, "serve", "--help", cwd=tmp_path).stdout
    result = run_core(site, "validate", "--constant", "3", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("3.0: ok (storage 'constant'"), result.stderr
    result = run_core(site, "serve", "c.toml", "--constant", "3", cwd=tmp_path)
    assert result.stderr == "core: error: c.toml and --constant both say what to serve; give one\n"

    server = serve(None, command=[sys.executable, "-m", "core", "serve", "--constant", "3", "--host", "127.0.0.1",
                                  "--port", "{port}"],
                   env={"PYTHONPATH": str(site), "CORE_LOAD_PLUGINS": "cli-plugin", "CORE_VERSION": "2.0"})
    info = httpx.get(f"{server.url}/info").json()
    assert (info["name"], info["version"]) == ("constant", "2.0")  # the environment applies over it
    assert httpx.post(f"{server.url}/predict", json={"X": [[1, 2]]}).json() == {"predict_result": [[3.0, 6.0]]}


def test_a_plugin_option_that_clashes_names_the_plugin(tmp_path):
    clash = """
        import core

        @core.hookimpl
        def register_serve_options(parser):
            parser.add_argument("--port")
    """
    site = install_plugin(tmp_path, "core-clash", "clash", clash)
    result = run_core(site, "serve", "--help", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == ("core: error: plugin 'clash' (register_serve_options): argument --port: "
                             "conflicting option string: --port\n")
