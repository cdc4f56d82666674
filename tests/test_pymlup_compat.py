"""pymlup compatibility: pymlup's documented behaviours (its docs' examples, its example configs
and its own tests, github.com/nxexox/pymlup) replayed with only the import changed,
``import core as mlup``.

Where ``core`` differs on purpose, the test says so, checks ``core``'s behaviour and the way to
get pymlup's; the README's "Coming from pymlup" table lists each difference. The compatibility
code itself is in ``core/pymlup.py``.
"""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from pymlup_models import ModelWithX, PrintModel
from serving import object_config

import core as mlup
from core import constants
from core.analysis import analyse
from core.errors import ConfigError, ValidationError
from core.plugins import load_plugins
from core.pymlup import CLASS_PATHS, LEGACY_KEYS, UNSUPPORTED
from core.testing import free_port
from core.validation import RequestValidator

#: pymlup's tests/conftest.py ``_test_json_config``, as it is.
PYMLUP_TEST_CONFIG: dict[str, Any] = {
    "ml": {
        "binarization_type": "mlup.ml.binarization.pickle.PickleBinarizer",
        "data_transformer_for_predicted": "mlup.ml.data_transformers.numpy_data_transformer.NumpyDataTransformer",
        "data_transformer_for_predict": "mlup.ml.data_transformers.pandas_data_transformer.PandasDataFrameTransformer",
        "use_thread_loop": True,
        "columns": [
            {"name": "MinTemp", "type": "float", "required": False, "default": 1.4},
            {"name": "MaxTemp", "type": "float", "required": False},
            {"name": "Humidity9am", "type": "float", "required": False},
            {"name": "Humidity3pm", "type": "float", "required": False},
            {"name": "Pressure9am", "type": "float", "required": False},
            {"name": "Pressure3pm", "type": "float", "required": False},
            {"name": "Temp9am", "type": "float", "required": False},
            {"name": "Temp3pm", "type": "float", "required": False},
        ],
        "storage_type": "mlup.ml.storage.local_disk.DiskStorage",
        "storage_kwargs": {"path_to_files": "test/path/to/file.pckl"},
        "auto_detect_predict_params": True,
        "max_thread_loop_workers": None,
        "type": "sklearn",
        "version": "1.2.3.4",
        "predict_method_name": "predict",
        "name": "Test",
    },
    "web": {
        "host": "0.0.0.0",
        "column_validation": False,
        "mode": "mlup.web.architecture.directly_to_predict.DirectlyToPredictArchitecture",
        "web_app_version": "1.0.0.0",
        "min_batch_len": 10,
        "port": 8009,
        "ttl_predicted_data": 60,
        "throttling_max_requests": None,
        "item_id_col_name": "mlup_item_id",
        "is_long_predict": False,
        "batch_worker_timeout": 1,
        "max_queue_size": 100,
        "throttling_max_request_len": None,
        "timeout_for_shutdown_daemon": 3,
        "debug": False,
        "show_docs": True,
        "ttl_client_wait": 30.0,
        "uvicorn_kwargs": {},
    },
}

#: Servers that need no plugin load none (they start faster).
CORE_ALONE = {"CORE_LOAD_PLUGINS": ""}

WEATHER_COLUMNS = ["MinTemp", "MaxTemp", "Humidity9am", "Humidity3pm", "Pressure9am", "Pressure3pm",
                   "Temp9am", "Temp3pm"]


def example_config_yaml(model_path: Path) -> str:
    """pymlup's examples/example-config.yaml (what ``examples/configs.py`` writes), with the
    model's path put in."""
    columns = "\n".join(
        f"  - name: {name}\n    type: float" if name != "MinTemp"
        else "  - default: 1.4\n    name: MinTemp\n    required: false\n    type: float"
        for name in WEATHER_COLUMNS
    )
    return f"""version: '1'
ml:
  auto_detect_predict_params: true
  binarization_type: mlup.ml.binarization.pickle.PickleBinarizer
  columns:
{columns}
  data_transformer_for_predict: mlup.ml.data_transformers.pandas_data_transformer.PandasDataFrameTransformer
  data_transformer_for_predicted: mlup.ml.data_transformers.numpy_data_transformer.NumpyDataTransformer
  dtype_for_predict: null
  max_thread_loop_workers: null
  name: MyName
  predict_method_name: predict
  storage_kwargs:
    files_mask: scikit-learn-binary_cls_model.pckl
    path_to_files: {model_path}
  storage_type: mlup.ml.storage.local_disk.DiskStorage
  type: sklearn
  use_thread_loop: false
  version: MyVersion
web:
  batch_worker_timeout: 1.0
  column_validation: false
  debug: false
  host: 0.0.0.0
  is_long_predict: false
  item_id_col_name: mlup_item_id
  max_queue_size: 100
  min_batch_len: 10
  mode: mlup.web.architecture.directly_to_predict.DirectlyToPredictArchitecture
  port: 8009
  show_docs: true
  throttling_max_request_len: null
  throttling_max_requests: null
  timeout_for_shutdown_daemon: 3.0
  ttl_client_wait: 30.0
  ttl_predicted_data: 60
  uvicorn_kwargs: {{}}
  web_app_version: 1.0.0.0
"""


def assert_attributes(expected: dict[str, Any], obj: Any) -> None:
    """pymlup's TestMLupPublicMethods.assert_attributes, minus the keys core does not keep."""
    for key, value in expected.items():
        if key in LEGACY_KEYS:
            continue
        actual = obj[key] if isinstance(obj, dict) else getattr(obj, key)
        assert actual == value, key


def run_python(code: str) -> str:
    """``code`` in a fresh interpreter (nothing imported yet): its stdout."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parent / "support")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# ---------------------------------------------------------------------- models on disk


@pytest.fixture
def pickle_print_model(tmp_path: Path) -> Path:
    """pymlup's ``pickle_print_model`` fixture."""
    path = tmp_path / "pickle_print_model.pckl"
    path.write_bytes(pickle.dumps(PrintModel()))
    return path


@pytest.fixture
def joblib_print_model(tmp_path: Path) -> Path:
    """pymlup's ``joblib_print_model`` fixture."""
    import joblib

    path = tmp_path / "joblib_print_model.joblib"
    joblib.dump(PrintModel(), path)
    return path


@pytest.fixture(scope="module")
def weather_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, len(WEATHER_COLUMNS)))
    return x, (x[:, 0] + x[:, 3] > 0).astype(int)


@pytest.fixture(scope="module")
def array_model(tmp_path_factory: pytest.TempPathFactory, weather_data: Any) -> tuple[Any, Path]:
    """A scikit-learn classifier fitted on arrays (it knows its width only), pickled as
    pymlup's examples name it."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(*weather_data)
    path = tmp_path_factory.mktemp("array-model") / "scikit-learn-binary_cls_model.pckl"
    path.write_bytes(pickle.dumps(model))
    return model, path


@pytest.fixture(scope="module")
def frame_model(tmp_path_factory: pytest.TempPathFactory, weather_data: Any) -> tuple[Any, Path]:
    """The same classifier fitted on a DataFrame of pymlup's example columns."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    x, y = weather_data
    model = LogisticRegression().fit(pd.DataFrame(x, columns=WEATHER_COLUMNS), y)
    path = tmp_path_factory.mktemp("frame-model") / "scikit-learn-binary_cls_model.pckl"
    path.write_bytes(pickle.dumps(model))
    return model, path


# ---------------------------------------------------------------------- constants and paths


#: Every name pymlup's mlup/constants.py defines.
PYMLUP_CONSTANTS: dict[str, list[str]] = {
    "ModelLibraryType": ["SKLEARN", "SCIKIT_LEARN", "LIGHTGMB", "TENSORFLOW", "TORCH", "ONNX", "other"],
    "StorageType": ["memory", "disk"],
    "BinarizationType": ["MEMORY", "JOBLIB", "PICKLE", "LIGHTGBM", "TENSORFLOW", "TENSORFLOW_ZIP", "TORCH",
                         "TORCH_JIT", "ONNX_INFERENCE_SESSION", "ONNX_INFERENCE_SESSION_FULL_RETURN"],
    "ModelDataTransformerType": ["PANDAS_DF", "NUMPY_ARR", "TENSORFLOW_TENSOR", "TORCH_TENSOR", "SRC_TYPES"],
    "WebAppArchitecture": ["directly_to_predict", "worker_and_queue", "batching"],
}


def test_every_pymlup_constant_is_in_core_constants() -> None:
    for name in ("IS_X", "THERE_IS_ARGS", "DEFAULT_X_ARG_NAME", "ITEM_ID_COL_NAME", "PREDICT_ID_HEADER",
                 "LoadedFile"):
        assert hasattr(constants, name), name
    for enum_name, members in PYMLUP_CONSTANTS.items():
        enum = getattr(constants, enum_name)
        for member in members:
            assert isinstance(getattr(enum, member), enum), f"{enum_name}.{member}"
    assert constants.DEFAULT_X_ARG_NAME == "data_for_predict"
    assert constants.ModelDataTransformerType.PANDAS_DF == "pandas"


def test_import_core_as_mlup_reaches_constants_without_importing_them() -> None:
    out = run_python("import core as mlup; print(mlup.constants.StorageType.disk.value, "
                     "mlup.constants.ModelDataTransformerType.PANDAS_DF.value)")
    assert out == "disk pandas"


def test_empty_model_is_where_pymlup_has_it() -> None:
    """The storages page: ``from mlup.ml.empty import EmptyModel``."""
    assert run_python("from core.ml.empty import EmptyModel; print(EmptyModel.__module__)") == "core.empty"
    assert run_python("import core.ml.empty; print(core.ml.empty.EmptyModel().predict(X=[[1]]))") == "[[1]]"
    from core.ml.empty import EmptyModel

    assert EmptyModel is mlup.empty.EmptyModel


def test_loaded_file_takes_pymlups_argument_order() -> None:
    """pymlup's LoadedFile is ``NamedTuple(raw_data, path)``: its storages write
    ``LoadedFile(f.read(), path=path_to_file)``."""
    file = mlup.LoadedFile(b"\x80\x05data", path="/models/m.pckl")
    assert (file.raw_data, file.path) == (b"\x80\x05data", "/models/m.pckl")
    file = constants.LoadedFile(b"abc", "/models/m.pkl")
    assert (file.raw_data, file.path, file.obj) == (b"abc", "/models/m.pkl", None)
    assert mlup.LoadedFile(path="/m.onnx").raw_data is None  # core's keyword use still works
    assert mlup.LoadedFile(obj=PrintModel()).path is None


@pytest.mark.parametrize("kind", sorted(CLASS_PATHS))
def test_each_pymlup_class_path_is_a_core_component(kind: str) -> None:
    plugins = load_plugins()
    registry = {"storage": plugins.storages, "binarizer": plugins.binarizers,
                "transformer": plugins.transformers, "architecture": plugins.architectures}[kind]
    for path, name in CLASS_PATHS[kind].items():
        if name in registry.entries:
            assert registry.get(path) is registry.entries[name].cls
        else:  # a plugin that is not installed: the error says which pymlup name it is
            with pytest.raises(ConfigError, match=f"unknown {kind} '{name}' \\(pymlup's {path}\\)"):
                registry.get(path)


@pytest.mark.plugins
def test_pymlups_pandas_transformer_is_the_pandas_plugin() -> None:
    path = "mlup.ml.data_transformers.pandas_data_transformer.PandasDataFrameTransformer"
    assert load_plugins().transformers.get(path).__name__ == "PandasTransformer"


@pytest.mark.parametrize(
    "member",
    [constants.BinarizationType.MEMORY],
)
def test_pymlup_classes_without_a_counterpart_say_what_to_use(member: Any) -> None:
    plugins = load_plugins(entry_points=False)
    registry = plugins.transformers if isinstance(member, constants.ModelDataTransformerType) else plugins.binarizers
    with pytest.raises(ConfigError, match="core has no counterpart of pymlup's") as caught:
        registry.get(member.value)
    message = str(caught.value)
    assert "\n" not in message
    assert UNSUPPORTED[registry.kind][member.value] in message


# ---------------------------------------------------------------------- Config(**keys)


LEGACY_VALUES: dict[str, Any] = {
    "type": constants.ModelLibraryType.SKLEARN, "column_validation": True, "custom_column_pydantic_model": None,
    "uvicorn_kwargs": {"loop": "none"}, "item_id_col_name": "mlup_item_id", "web_app_version": "1.0.0.0",
    "min_batch_len": 10, "batch_worker_timeout": 1.0,
}


def test_legacy_values_cover_every_legacy_key() -> None:
    assert set(LEGACY_VALUES) == set(LEGACY_KEYS)


@pytest.mark.parametrize("key", sorted(LEGACY_VALUES))
def test_config_takes_every_legacy_key_with_the_warning_of_a_file(key: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="core"):
        from_keys = mlup.Config(port=8011, **{key: LEGACY_VALUES[key]})
        from_dict = mlup.Config.from_dict({"port": 8011, key: LEGACY_VALUES[key]}, source="conf.yaml")
    assert from_keys == from_dict
    assert from_keys.port == 8011
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"Config(): key {key!r} is not used by core: {LEGACY_KEYS[key]}",
                        f"conf.yaml: key {key!r} is not used by core: {LEGACY_KEYS[key]}"]


def test_the_issue_s_three_keys_together(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="core"):
        conf = mlup.Config(column_validation=True, min_batch_len=3, uvicorn_kwargs={}, mode="batching")
    assert conf.mode == "batching"
    assert len(caplog.records) == 3


def test_unknown_keys_and_wrong_types_are_still_refused() -> None:
    with pytest.raises(ConfigError, match=r"Config\(\): unknown config key 'prot'; did you mean 'port'\?"):
        mlup.Config(prot=8010)
    with pytest.raises(ConfigError, match="config key 'port' must be int, got str '8010'"):
        mlup.Config(port="8010")
    conf = mlup.Config()
    with pytest.raises(ConfigError, match="must be int"):
        conf.port = "x"


def test_reading_a_legacy_key_says_why_it_is_absent() -> None:
    """pymlup's tests write ``up.conf.uvicorn_kwargs['loop'] = 'none'``; core has no uvicorn."""
    with pytest.raises(AttributeError, match="core is served by hypercorn"):
        mlup.Config(uvicorn_kwargs={}).uvicorn_kwargs  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
        mlup.Config().nonsense  # noqa: B018


def test_pymlup_enums_stand_for_their_value() -> None:
    """The storages page: ``Config(storage_type=constants.StorageType.disk, ...)``."""
    conf = mlup.Config(
        storage_type=constants.StorageType.disk,
        mode=constants.WebAppArchitecture.batching,
        binarization_type=constants.BinarizationType.JOBLIB,
        data_transformer_for_predict=constants.ModelDataTransformerType.NUMPY_ARR,
        data_transformer_for_predicted=constants.ModelDataTransformerType.SRC_TYPES,
    )
    assert (conf.storage_type, conf.mode, conf.binarization_type) == ("disk", "batching", "pickle")
    assert (conf.data_transformer_for_predict, conf.data_transformer_for_predicted) == ("numpy", "passthrough")
    assert type(conf.storage_type) is str


# ---------------------------------------------------------------------- dict, YAML and JSON


def test_load_from_dict_and_to_dict(caplog: pytest.LogCaptureFixture) -> None:
    """pymlup's test_load_from_dict and test_to_dict."""
    with caplog.at_level(logging.WARNING, logger="core"):
        up = mlup.UP.load_from_dict(PYMLUP_TEST_CONFIG, load_model=False)
    assert_attributes(PYMLUP_TEST_CONFIG["ml"], up.conf)
    assert_attributes(PYMLUP_TEST_CONFIG["web"], up.conf)
    dict_from_up = up.to_dict()
    assert set(dict_from_up) == {"ml", "web"}
    assert_attributes(PYMLUP_TEST_CONFIG["ml"], dict_from_up["ml"])
    assert_attributes(PYMLUP_TEST_CONFIG["web"], dict_from_up["web"])
    assert "port" in dict_from_up["web"] and "storage_kwargs" in dict_from_up["ml"]
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for key in ("type", "column_validation", "web_app_version", "min_batch_len", "item_id_col_name",
                "batch_worker_timeout", "uvicorn_kwargs"):
        assert f"config: key {key!r} is not used by core" in warnings


def test_to_dict_is_pymlups_shape_and_the_flat_form_has_its_own_name() -> None:
    conf = mlup.Config(name="m", port=8011, storage_kwargs={"path_to_files": "m.onnx"})
    nested = conf.to_dict()
    assert nested["ml"]["name"] == "m" and nested["ml"]["storage_kwargs"] == {"path_to_files": "m.onnx"}
    assert nested["web"]["port"] == 8011 and "name" not in nested["web"]
    flat = conf.to_flat_dict()
    assert flat["port"] == 8011 and flat["name"] == "m" and "ml" not in flat
    assert set(flat) == set(nested["ml"]) | set(nested["web"])
    assert mlup.Config.from_dict(nested) == conf == mlup.Config.from_dict(flat)
    nested["ml"]["storage_kwargs"]["path_to_files"] = "changed"  # a copy: the config is unchanged
    assert conf.storage_kwargs == {"path_to_files": "m.onnx"}


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_file_round_trip(fmt: str, tmp_path: Path) -> None:
    """pymlup's test_to_yaml / test_to_json: load a file, write it (to a name ending in
    ``test``: load_from_yaml reads YAML whatever the name), load that again."""
    source = tmp_path / f"config.{fmt}"
    source.write_text(yaml.dump(PYMLUP_TEST_CONFIG) if fmt == "yaml" else json.dumps(PYMLUP_TEST_CONFIG))
    load = mlup.UP.load_from_yaml if fmt == "yaml" else mlup.UP.load_from_json
    up = load(source, load_model=False)
    getattr(up, f"to_{fmt}")(str(source) + "test")
    up = load(str(source) + "test", load_model=False)
    assert_attributes(PYMLUP_TEST_CONFIG["ml"], up.conf)
    assert_attributes(PYMLUP_TEST_CONFIG["web"], up.conf)


def test_load_from_yaml_reads_json_as_pymlups_tests_do(tmp_path: Path) -> None:
    """pymlup's test_load_from_json calls load_from_yaml on the JSON file."""
    path = tmp_path / "yaml_test_config.json"
    path.write_text(json.dumps(PYMLUP_TEST_CONFIG))
    assert_attributes(PYMLUP_TEST_CONFIG["ml"], mlup.UP.load_from_yaml(path, load_model=False).conf)


def test_paths_are_written_as_text(tmp_path: Path) -> None:
    up = mlup.UP(conf=mlup.Config(storage_kwargs={"path_to_files": tmp_path / "m.pckl"}))
    written = yaml.safe_load(up.to_yaml())
    assert written["ml"]["storage_kwargs"] == {"path_to_files": str(tmp_path / "m.pckl")}


def test_written_files_have_pymlups_layout(tmp_path: Path) -> None:
    up = mlup.UP(conf=mlup.Config(name="MyName", version="MyVersion", port=8011))
    up.to_yaml(tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text()
    assert text.startswith("version: '1'\nml:\n")
    data = yaml.safe_load(text)
    assert data["ml"]["name"] == "MyName" and data["ml"]["version"] == "MyVersion"
    assert data["web"]["port"] == 8011
    up.to_json(tmp_path / "c.json")
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["version"] == "1" and data["ml"]["name"] == "MyName"
    assert up.to_yaml() == (tmp_path / "c.yaml").read_text()  # no path: the text


def test_pymlups_example_config_file_loads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "example-config.yaml"
    path.write_text(example_config_yaml(tmp_path / "scikit-learn-binary_cls_model.pckl"))
    with caplog.at_level(logging.WARNING, logger="core"):
        conf = mlup.Config.from_file(path)
    assert (conf.name, conf.version, conf.use_thread_loop) == ("MyName", "MyVersion", False)
    assert conf.storage_kwargs["files_mask"] == "scikit-learn-binary_cls_model.pckl"
    assert [c["name"] for c in conf.columns or []] == WEATHER_COLUMNS
    assert len(caplog.records) == 7  # type and six web keys, each named
    again = tmp_path / "again.yaml"
    mlup.UP(conf=conf).to_yaml(again)
    assert mlup.Config.from_file(again) == conf


# ---------------------------------------------------------------------- columns: collection_type


COLLECTION_COLUMNS = [{"name": "tags", "type": "int", "collection_type": "List"},
                      {"name": "x", "type": "float", "required": False, "default": 1.5}]


def test_a_collection_column_takes_a_list_of_its_type() -> None:
    validator = RequestValidator(analyse(ModelWithX(), columns=COLLECTION_COLUMNS))
    values = validator.validate({"X": [{"tags": [1, 2], "x": 2.0}, {"tags": []}, [[3], 4]]})
    assert values["X"] == [[[1, 2], 2.0], [[], 1.5], [[3], 4]]


@pytest.mark.parametrize(
    ("row", "loc", "msg"),
    [
        ({"tags": 1}, ["body", "X", 0, "tags"], "must be a list of int, got int"),
        ({"tags": [1, "2"]}, ["body", "X", 0, "tags", 1], "must be int, got str"),
        ({"tags": [1, True]}, ["body", "X", 0, "tags", 1], "must be int, got bool"),
        ({}, ["body", "X", 0, "tags"], "field required"),
    ],
)
def test_a_collection_column_names_what_is_wrong(row: dict[str, Any], loc: list[Any], msg: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RequestValidator(analyse(ModelWithX(), columns=COLLECTION_COLUMNS)).validate({"X": [row]})
    [detail] = caught.value.details
    assert (detail["loc"], detail["msg"]) == (loc, msg)


@pytest.mark.parametrize(
    ("column", "match"),
    [
        ({"name": "t", "type": "int", "collection_type": "Set"}, "unknown collection_type 'Set'; use 'List'"),
        ({"name": "t", "type": "int", "collection_type": "List", "default": 3}, "'default' must be a list of int"),
        ({"name": "t", "type": "int", "collection_type": "list", "default": [1, "a"]},
         "'default' must be a list of int, got str 'a'"),
    ],
)
def test_a_bad_collection_column_is_a_config_error(column: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        mlup.Config(columns=[column])


def test_served_collection_columns(serve: Any) -> None:
    server = serve(object_config("pymlup_models:model_with_x", columns=COLLECTION_COLUMNS,
                                 data_transformer_for_predict="passthrough"), env=CORE_ALONE)
    response = httpx.post(f"{server.url}/predict", json={"X": [{"tags": [1, 2]}]})
    assert response.status_code == 200, response.text
    assert response.json()["predict_result"] == [[[1, 2], 1.5]]
    response = httpx.post(f"{server.url}/predict", json={"X": [{"tags": [1, "x"]}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "X", 0, "tags", 1]
    schema = httpx.get(f"{server.url}/openapi.json").json()["components"]["schemas"]["PredictRequest"]
    assert schema["properties"]["X"]["items"]["properties"]["tags"] == {"type": "array", "items": {"type": "integer"}}


# ---------------------------------------------------------------------- /redoc


def test_redoc_is_served_next_to_docs(serve: Any) -> None:
    server = serve(object_config("pymlup_models:print_model", name="<My model>"), env=CORE_ALONE)
    page = httpx.get(f"{server.url}/redoc")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<redoc spec-url="openapi.json">' in page.text and "redoc.standalone.js" in page.text
    assert "&lt;My model&gt; - API reference" in page.text
    assert httpx.get(f"{server.url}/openapi.json").status_code == 200


def test_show_docs_false_hides_redoc_too() -> None:
    up = mlup.UP.load_from_dict({**object_config("pymlup_models:print_model"), "show_docs": False,
                                 "host": "127.0.0.1", "port": free_port()})
    up.run_web_app(daemon=True)
    try:
        for path in ("/redoc", "/docs", "/openapi.json"):
            assert httpx.get(f"http://127.0.0.1:{up.conf.port}{path}").status_code == 404, path
    finally:
        up.stop_web_app()


# ---------------------------------------------------------------------- disk storage masks


@pytest.mark.plugins
@pytest.mark.parametrize("mask", [r"(\w.-_)*.pckl", r"\.pckl$", "model", "pickle_print_model.pckl"])
def test_pymlup_masks_find_the_model_in_a_folder(mask: str, pickle_print_model: Path) -> None:
    (pickle_print_model.parent / "notes.txt").write_text("not the model")
    up = mlup.UP.load_from_dict({"ml": {
        "storage_type": "mlup.ml.storage.local_disk.DiskStorage",
        "storage_kwargs": {"path_to_files": str(pickle_print_model.parent), "files_mask": mask},
        "binarization_type": "mlup.ml.binarization.pickle.PickleBinarizer",
    }})
    assert up.predict(X=[[1, 2, 3]]) == [[1, 2, 3]]
    assert up.ml.files == [{"name": "pickle_print_model.pckl", "path": str(pickle_print_model)}]


@pytest.mark.plugins
def test_file_mask_and_files_mask_at_once_is_one_line(pickle_print_model: Path) -> None:
    with pytest.raises(ConfigError, match="sets both file_mask and files_mask") as caught:
        mlup.UP.load_from_dict({"storage_type": "disk", "binarization_type": "pickle", "storage_kwargs": {
            "path_to_files": str(pickle_print_model), "file_mask": "a", "files_mask": "b"}})
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------- pymlup's examples


@pytest.mark.plugins
def test_examples_configs_py(tmp_path: Path, array_model: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch,
                             caplog: pytest.LogCaptureFixture) -> None:
    """pymlup's examples/configs.py. One difference on purpose: pymlup's ``binarization_type``
    'auto' unpickled the file; core unpickles only where the config says the file is trusted."""
    model, model_path = array_model
    monkeypatch.chdir(tmp_path)
    settings: dict[str, Any] = dict(
        name="MyName",
        version="MyVersion",
        columns=[
            {"name": "MinTemp", "type": "float", "required": False, "default": 1.4},
            *({"name": name, "type": "float"} for name in WEATHER_COLUMNS[1:]),
        ],
        auto_detect_predict_params=True,
        storage_type=constants.StorageType.disk,
        storage_kwargs={
            "path_to_files": str(model_path),
            "files_mask": "scikit-learn-binary_cls_model.pckl",
        },
        use_thread_loop=False,
    )
    up = mlup.UP(conf=mlup.Config(**settings))
    with pytest.raises(ConfigError, match="set binarization_type = 'pickle'"):
        up.ml.load()
    up = mlup.UP(conf=mlup.Config(**settings, binarization_type=constants.BinarizationType.PICKLE))
    up.ml.load()
    up.to_yaml("example-config.yaml")
    up.to_json("example-config.json")

    new_up = mlup.UP.load_from_yaml("example-config.yaml", load_model=True)
    rows = np.round(np.random.default_rng(1).normal(size=(5, 8)), 3).tolist()
    assert new_up.predict(X=rows) == model.predict(np.array(rows)).tolist()
    dict_rows = [dict(zip(WEATHER_COLUMNS, row)) for row in rows]
    assert new_up.predict(X=dict_rows) == model.predict(np.array(rows)).tolist()
    assert mlup.UP.load_from_json("example-config.json", load_model=False).conf == new_up.conf

    up.to_yaml("example-save-config.yaml")
    up_for_change = up.load_from_yaml("example-config.yaml", load_model=True)
    up_for_change.conf.name = "NewName"
    up_for_change.to_yaml("example-changed-config.yaml")
    assert mlup.Config.from_file("example-changed-config.yaml").name == "NewName"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.plugins
def test_example_config_yaml_served(serve: Any, tmp_path: Path, frame_model: tuple[Any, Path]) -> None:
    """pymlup's examples/example-config.yaml as it is (its pickle, its pandas transformer, its
    legacy keys), served by ``hypercorn core.app:app``."""
    import pandas as pd

    model, model_path = frame_model
    config = tmp_path / "example-config.yaml"
    config.write_text(example_config_yaml(model_path))
    server = serve(config, env={"CORE_LOAD_PLUGINS": "disk,pickle,pandas"})
    rows = np.round(np.random.default_rng(2).normal(size=(4, 8)), 3).tolist()
    expected = model.predict(pd.DataFrame(rows, columns=WEATHER_COLUMNS)).tolist()
    response = httpx.post(f"{server.url}/predict", json={"X": [dict(zip(WEATHER_COLUMNS, r)) for r in rows]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predict_result": expected}
    without_min_temp = {name: 0.5 for name in WEATHER_COLUMNS[1:]}  # MinTemp: default 1.4
    response = httpx.post(f"{server.url}/predict", json={"X": [without_min_temp]})
    frame = pd.DataFrame([{"MinTemp": 1.4, **without_min_temp}], columns=WEATHER_COLUMNS)
    assert response.json() == {"predict_result": model.predict(frame).tolist()}
    assert "key 'uvicorn_kwargs' is not used by core" in server.log()


# ---------------------------------------------------------------------- pickling UP


@pytest.mark.plugins
@pytest.mark.parametrize("mode", list(constants.WebAppArchitecture))
def test_up_pickles_and_predicts_after_unpickling(mode: Any, pickle_print_model: Path) -> None:
    """pymlup's test_mlup_pickle_serilization (with binarization_type = 'pickle': core does not
    unpickle an unpinned file under 'auto')."""
    up = mlup.UP(conf=mlup.Config(
        data_transformer_for_predict=constants.ModelDataTransformerType.NUMPY_ARR,
        storage_type=constants.StorageType.disk,
        storage_kwargs={"path_to_files": pickle_print_model},
        binarization_type=constants.BinarizationType.PICKLE,
        mode=mode,
    ))
    up.ml.load()
    up.web.load()
    assert up.predict(X=[[1, 2, 3]]) == [[1, 2, 3]]

    up_unpickle = pickle.loads(pickle.dumps(up))
    assert up_unpickle.predict(X=[[1, 2, 3]]) == [[1, 2, 3]]
    assert up_unpickle.conf == up.conf
    assert up_unpickle.ml.files == up.ml.files and up_unpickle.ml.binarizer_name == "pickle"
    assert not up_unpickle.web.loaded  # the web app is built again on demand


@pytest.mark.plugins
@pytest.mark.parametrize("mode", ["directly_to_predict", "batching"])
def test_up_joblib_round_trip(mode: str, joblib_print_model: Path, tmp_path: Path) -> None:
    """pymlup's test_mlup_joblib_serilization, with its files_mask and BinarizationType.JOBLIB."""
    import joblib

    up = mlup.UP(conf=mlup.Config(
        data_transformer_for_predict=constants.ModelDataTransformerType.NUMPY_ARR,
        storage_type=constants.StorageType.disk,
        storage_kwargs={"path_to_files": joblib_print_model, "files_mask": r"(\w.-_)*.joblib"},
        binarization_type=constants.BinarizationType.JOBLIB,
        mode=mode,
    ))
    up.ml.load()
    up.web.load()
    assert up.predict(X=[[1, 2, 3]]) == [[1, 2, 3]]
    joblib.dump(up, tmp_path / "joblib_up.joblib")
    assert joblib.load(tmp_path / "joblib_up.joblib").predict(X=[[1, 2, 3]]) == [[1, 2, 3]]


@pytest.mark.plugins
def test_a_memory_model_and_the_ml_side_pickle_too() -> None:
    up = mlup.UP(ml_model=PrintModel(), conf=mlup.Config(data_transformer_for_predict="numpy"))
    up.ml.load()
    unpickled = pickle.loads(pickle.dumps(up))
    assert unpickled.predict(X=[[1, 2, 3]], test_param=True) == [[1, 2, 3]]
    ml = pickle.loads(pickle.dumps(up.ml))  # pymlup's test_mlup_model_pickle_serilization
    assert ml.up.predict(X=[[4, 5]]) == [[4, 5]] and ml is ml.up.ml


@pytest.mark.plugins
def test_an_unloaded_up_pickles_its_config(pickle_print_model: Path) -> None:
    up = mlup.UP(conf=mlup.Config(storage_type="disk", binarization_type="pickle",
                                  storage_kwargs={"path_to_files": str(pickle_print_model)}))
    unpickled = pickle.loads(pickle.dumps(up))
    assert not unpickled.ml.loaded
    unpickled.ml.load()
    assert unpickled.predict(X=[[7]]) == [[7]]


@pytest.mark.plugins
def test_an_unpickled_up_serves(pickle_print_model: Path) -> None:
    up = mlup.UP(conf=mlup.Config(storage_type="disk", binarization_type="pickle", host="127.0.0.1",
                                  port=free_port(), storage_kwargs={"path_to_files": str(pickle_print_model)}))
    up.ml.load()
    served = pickle.loads(pickle.dumps(up))
    served.run_web_app(daemon=True)
    try:
        response = httpx.post(f"http://127.0.0.1:{served.conf.port}/predict", json={"X": [[1, 2, 3]]})
        assert response.json() == {"predict_result": [[1, 2, 3]]}
    finally:
        served.stop_web_app()


# ---------------------------------------------------------------------- scikit-learn rows


@pytest.mark.plugins
def test_a_scikit_learn_pickle_names_the_bad_row(serve: Any, array_model: tuple[Any, Path]) -> None:
    """A model fitted on arrays knows its width (n_features_in_): a short row, a string in a
    number column and a null the model cannot take are 422s naming them, not 500s."""
    model, model_path = array_model
    server = serve({"storage_type": "disk", "binarization_type": "pickle",
                    "storage_kwargs": {"path_to_files": str(model_path)}}, env={"CORE_LOAD_PLUGINS": "disk,pickle"})
    rows = [[0.1] * 8, [-0.5] * 8]
    good = httpx.post(f"{server.url}/predict", json={"X": rows})
    assert good.status_code == 200
    assert good.json()["predict_result"] == model.predict(np.array(rows)).tolist()
    cases = [
        ([[0.1] * 8, [0.1] * 7], ["body", "X", 1], "expected 8 values"),
        ([[0.1] * 8, [0.1] * 3 + ["warm"] + [0.1] * 4], ["body", "X", 1, 3], "must be a number"),
        ([[None] + [0.1] * 7], ["body", "X", 0, 0], "must be a number (this model does not take missing values)"),
    ]
    for body, loc, msg in cases:
        response = httpx.post(f"{server.url}/predict", json={"X": body})
        assert response.status_code == 422, response.text
        [detail] = response.json()["detail"]
        assert detail["loc"] == loc and detail["msg"].startswith(msg)
    assert "Traceback" not in server.log()
