"""The ``tensorflow`` binarizer on real files of every format: the contract suite, the
predictions against the model's own, detection, safe mode, the sha256 pin and threads."""

from __future__ import annotations

import inspect
import io
import os
import pickle
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from core.analysis import Outputs, Tensor, analyse
from core.components import LoadedFile
from core.errors import ConfigError, ModelLoadError
from core.ml import build
from core.testing import BinarizerContract

from core_binarizer_tensorflow import TensorFlowBinarizer
from core_binarizer_tensorflow.model import TensorFlowModel


class TestKerasContract(BinarizerContract):
    name = "tensorflow"
    predict_method_name = "__call__"  # as pymlup calls Keras models

    @pytest.fixture
    def binarizer(self) -> TensorFlowBinarizer:
        return TensorFlowBinarizer()

    @pytest.fixture
    def model_file(self, saved: dict[str, Path]) -> LoadedFile:
        return LoadedFile(path=str(saved["keras"]))

    @pytest.fixture
    def predict_input(self, rows: np.ndarray[Any, Any]) -> dict[str, Any]:
        return {"X": rows.tolist()}


class TestH5Contract(TestKerasContract):
    predict_method_name = "predict"

    @pytest.fixture
    def model_file(self, saved: dict[str, Path]) -> LoadedFile:
        return LoadedFile(path=str(saved["h5"]))


class TestSavedModelContract(TestKerasContract):
    reads_raw_data = False  # a folder: read from the disk

    @pytest.fixture
    def model_file(self, saved: dict[str, Path]) -> LoadedFile:
        return LoadedFile(path=str(saved["saved_model"]))


class TestZippedSavedModelContract(TestKerasContract):
    @pytest.fixture
    def binarizer(self) -> TensorFlowBinarizer:
        return TensorFlowBinarizer(signature="serving_default")

    @pytest.fixture
    def model_file(self, saved: dict[str, Path]) -> LoadedFile:
        return LoadedFile(path=str(saved["zip"]))


# ---------------------------------------------------------------------- predictions


@pytest.mark.parametrize("kind", ["keras", "h5", "saved_model", "folder", "zip"])
def test_every_format_predicts_what_the_model_predicts(
    saved: dict[str, Path], rows: np.ndarray[Any, Any], expected: np.ndarray[Any, Any], kind: str
) -> None:
    model = TensorFlowBinarizer().deserialize([LoadedFile(path=str(saved[kind]))])
    assert isinstance(model, TensorFlowModel)
    for result in (model.predict(X=rows.tolist()), model(rows), model.predict(rows)):
        assert isinstance(result, np.ndarray) and result.dtype == np.float32
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["keras", "h5", "zip"])
def test_from_bytes_without_a_telling_name(
    saved: dict[str, Path], rows: np.ndarray[Any, Any], expected: np.ndarray[Any, Any], kind: str
) -> None:
    model = TensorFlowBinarizer().deserialize([LoadedFile(raw_data=saved[kind].read_bytes())])
    np.testing.assert_allclose(model.predict(rows), expected, rtol=1e-5, atol=1e-6)


def test_the_signature_declares_the_model(saved: dict[str, Path]) -> None:
    """Core's analysis reads dtype, shape and outputs from the model, for ``predict`` and
    for ``__call__`` (pymlup's predict_method_name for Keras)."""
    for kind, output in (("keras", "probabilities"), ("saved_model", "output_0")):
        model = TensorFlowBinarizer().deserialize([LoadedFile(path=str(saved[kind]))])
        for method in ("predict", "__call__"):
            interface = analyse(model, predict_method_name=method)
            [argument] = interface.arguments
            assert (argument.name, argument.is_rows, argument.kind) == ("X", True, "array")
            assert argument.tensor is not None
            assert (argument.tensor.dtype, argument.tensor.shape) == ("float32", (None, 4))
            assert interface.outputs == Outputs({output: Tensor("float32", (None, 3))})
        assert list(inspect.signature(model.predict).parameters) == ["X"]


def test_a_model_with_two_inputs_and_two_outputs(tmp_path: Path) -> None:
    left = keras.Input(shape=(2,), name="left")
    right = keras.Input(shape=(3,), name="right")
    joined = keras.layers.Concatenate()([left, right])
    total = keras.layers.Dense(1, name="total", kernel_initializer="ones", use_bias=False)(joined)
    double = keras.layers.Dense(5, name="double", use_bias=False,
                                kernel_initializer=keras.initializers.Identity(2.0))(joined)
    keras.Model([left, right], [total, double]).save(tmp_path / "two.keras")
    model = TensorFlowBinarizer().deserialize([LoadedFile(path=str(tmp_path / "two.keras"))])
    assert list(inspect.signature(model.predict).parameters) == ["left", "right"]
    result = model.predict(left=[[1.0, 2.0]], right=[[3.0, 4.0, 5.0]])
    assert list(result) == ["total", "double"]
    assert result["total"].tolist() == [[15.0]]
    assert result["double"].tolist() == [[2.0, 4.0, 6.0, 8.0, 10.0]]


# ---------------------------------------------------------------------- detect


@pytest.mark.parametrize(
    ("kind", "name", "score"),
    [
        ("keras", None, 0.9),
        ("keras", "model.bin", 0.8),  # a zip with config.json and the weights inside
        ("h5", None, 0.9),
        ("h5", "model.bin", 0.6),  # the HDF5 signature alone
        ("saved_model", None, 0.9),
        ("folder", None, 0.9),
        ("zip", None, 0.8),
        ("zip", "model.bin", 0.8),
    ],
)
def test_detect(saved: dict[str, Path], kind: str, name: str | None, score: float) -> None:
    path = saved[kind]
    file = LoadedFile(path=str(path))
    if name is not None:
        file = LoadedFile(raw_data=path.read_bytes(), name=name)
    found, reason = TensorFlowBinarizer.detect(file)
    assert found == score and reason


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "name", "score"),
    [
        (_zip({"archive/data.pkl": b"x", "archive/version": b"3"}), "model.pt", 0.0),  # torch
        (_zip({"config.json": b"{}"}), "model.zip", 0.0),
        (_zip({"a/b/saved_model.pb": b""}), "deep.zip", 0.0),  # two folders down: not one
        (pickle.dumps([1], protocol=5), "model.pkl", 0.0),
        (b"\x08\x07\x12\x04onnx", "model.onnx", 0.0),
        (b"certainly not a model", "model.keras", 0.3),
        (b"", "model.keras", 0.9),  # a name and nothing to contradict it
        (b"PK\x03\x04 truncated", "model.bin", 0.0),
    ],
)
def test_detect_foreign_files(content: bytes, name: str, score: float) -> None:
    assert TensorFlowBinarizer.detect(LoadedFile(raw_data=content, name=name))[0] == score


def test_the_plugin_does_not_import_tensorflow_until_it_loads_a_model(
    saved: dict[str, Path],
) -> None:
    """``core plugins`` and ``auto``'s detection stay quick: TensorFlow is imported by
    ``deserialize`` and by the transformer's module only."""
    code = (
        "import sys\n"
        "from core.components import LoadedFile\n"
        "from core.plugins import load_plugins\n"
        "plugins = load_plugins()\n"
        "cls = plugins.binarizers.get('tensorflow')\n"
        f"print(cls.detect(LoadedFile(path={str(saved['keras'])!r}))[0])\n"
        "assert 'tf_tensor' in plugins.transformers.entries\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0.9", "False", "False"]


# ---------------------------------------------------------------------- trust


def lambda_model(path: Path) -> Path:
    """A model whose Lambda layer carries Python code (x * 3), saved at ``path``."""
    inputs = keras.Input(shape=(2,))
    outputs = keras.layers.Lambda(lambda x: x * 3.0)(inputs)
    with warnings.catch_warnings():  # .h5 is legacy
        warnings.simplefilter("ignore")
        keras.Model(inputs, outputs).save(path)
    return path


@pytest.fixture(scope="module")
def lambda_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lambda_model(tmp_path_factory.mktemp("lambda") / "lambda.keras")


@pytest.mark.parametrize("name", ["lambda.keras", "lambda.h5"])
def test_safe_mode_refuses_a_lambda_layer_in_one_line(tmp_path: Path, name: str) -> None:
    path = lambda_model(tmp_path / name)
    with pytest.raises(ModelLoadError) as caught:
        TensorFlowBinarizer().deserialize([LoadedFile(path=str(path))])
    message = str(caught.value)
    assert f"{name} holds Python code" in message and "safe_mode = false" in message
    assert "\n" not in message
    model = TensorFlowBinarizer(safe_mode=False).deserialize([LoadedFile(path=str(path))])
    assert model.predict([[1.0, 2.0]]).tolist() == [[3.0, 6.0]]


def test_auto_loads_unsafe_mode_only_where_the_config_trusts_the_file(lambda_file: Path) -> None:
    from core.config import Config
    from core.up import UP

    storage = {"storage_type": "disk", "storage_kwargs": {"path_to_files": str(lambda_file)}}
    up = UP(conf=Config(**storage, binarization_type="auto",
                        binarization_kwargs={"safe_mode": False}))
    refusal = r"binarization_type = 'tensorflow' .*binarization_kwargs\.sha256"
    with pytest.raises(ConfigError, match=refusal):
        up.ml.load()
    assert TensorFlowBinarizer().runs_code is False
    digest = __import__("hashlib").sha256(lambda_file.read_bytes()).hexdigest()
    for conf in (Config(**storage, binarization_type="tensorflow",
                        binarization_kwargs={"safe_mode": False}),
                 Config(**storage, binarization_type="auto",
                        binarization_kwargs={"safe_mode": False, "sha256": digest})):
        up = UP(conf=conf)
        up.ml.load()
        assert up.ml.binarizer_name == "tensorflow"
        assert np.asarray(up.predict(X=[[1.0, 1.0]])).tolist() == [[3.0, 3.0]]


def test_a_sha256_that_does_not_match_is_refused_unread(saved: dict[str, Path]) -> None:
    for kind in ("keras", "saved_model"):
        with pytest.raises(ModelLoadError, match=r"its SHA-256 is [0-9a-f]{64}, but"):
            TensorFlowBinarizer(sha256="0" * 64).deserialize([LoadedFile(path=str(saved[kind]))])


# ---------------------------------------------------------------------- settings and errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"intra_op_parallelism_threads": -1}, "whole number"),
        ({"inter_op_parallelism_threads": "2"}, "whole number"),
        ({"safe_mode": "no"}, "true or false"),
        ({"sha256": "abc"}, "64 hex digits"),
        ({"signature": ""}, "name of a SavedModel signature"),
    ],
)
def test_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TensorFlowBinarizer(**kwargs)


def test_unknown_setting_lists_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        build("binarizer", TensorFlowBinarizer, {"threads": 2}, "binarization_kwargs")
    assert ("safe_mode, intra_op_parallelism_threads, inter_op_parallelism_threads, sha256, "
            "signature") in str(caught.value)


def test_threads_are_set_before_tensorflow_runs(saved: dict[str, Path]) -> None:
    """In a fresh process the settings reach TensorFlow; in one where it already runs with
    others, they are refused rather than ignored."""
    code = (
        "from core.components import LoadedFile\n"
        "from core_binarizer_tensorflow import TensorFlowBinarizer\n"
        "b = TensorFlowBinarizer(intra_op_parallelism_threads=1, inter_op_parallelism_threads=2)\n"
        f"m = b.deserialize([LoadedFile(path={str(saved['keras'])!r})])\n"
        "m.predict([[1.0, 2.0, 3.0, 4.0]])\n"
        "import tensorflow as tf\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads(),\n"
        "      tf.config.threading.get_inter_op_parallelism_threads())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "2"]
    # This process runs TensorFlow already (the fixtures built a model).
    with pytest.raises(ConfigError, match="intra_op_parallelism_threads = 3 cannot take effect"):
        TensorFlowBinarizer(intra_op_parallelism_threads=3).deserialize(
            [LoadedFile(path=str(saved["keras"]))]
        )


@pytest.mark.parametrize("name", ["model.keras", "model.h5"])
def test_a_corrupt_file_is_one_line(tmp_path: Path, saved: dict[str, Path], name: str) -> None:
    source = saved["keras" if name.endswith(".keras") else "h5"].read_bytes()
    path = tmp_path / name
    path.write_bytes(source[: len(source) // 2])
    with pytest.raises(ModelLoadError) as caught:
        TensorFlowBinarizer().deserialize([LoadedFile(path=str(path))])
    message = str(caught.value)
    assert message.startswith(f"tensorflow binarizer: cannot load {name} as ")
    assert "\n" not in message


def test_nothing_to_read(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no file"):
        TensorFlowBinarizer().deserialize([])
    with pytest.raises(ModelLoadError, match=r"cannot read notes\.txt"):
        TensorFlowBinarizer().deserialize([LoadedFile(raw_data=b"hello", name="notes.txt")])
    with pytest.raises(ModelLoadError, match="read from its folder on the disk"):
        TensorFlowBinarizer().deserialize([LoadedFile(raw_data=b"", name="saved_model.pb")])


def test_a_zip_of_two_savedmodels_is_refused(saved: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for folder in ("a", "b"):
            archive.write(saved["saved_model"], f"{folder}/saved_model.pb")
    with pytest.raises(ModelLoadError, match=r"holds 2 SavedModels \(a/saved_model.pb, b/"):
        TensorFlowBinarizer().deserialize([LoadedFile(path=str(path))])
