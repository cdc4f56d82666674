"""The ``torchscript`` and ``torch`` binarizers on real files: the contract suite for every way
the MLP is saved, detection, settings, the sha256 pin, state_dicts and their errors, and the
model core analyses (``TorchModel``)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch_test_models
from core.analysis import Outputs, Tensor, analyse
from core.components import LoadedFile
from core.config import Config
from core.errors import ConfigError, ModelLoadError
from core.ml import build
from core.plugins import load_plugins
from core.testing import BinarizerContract
from core.up import UP

from core_binarizer_torch.binarizers import TorchBinarizer, TorchScriptBinarizer
from core_binarizer_torch.detect import kind_of
from core_binarizer_torch.model import TorchModel

HAS_EXPORT = hasattr(torch, "export") and hasattr(torch.export, "save")
needs_export = pytest.mark.skipif(not HAS_EXPORT, reason="this torch has no torch.export")


def scores(file: LoadedFile) -> dict[str, float]:
    return {"torchscript": TorchScriptBinarizer.detect(file)[0],
            "torch": TorchBinarizer.detect(file)[0]}


# ---------------------------------------------------------------------- contract suites


class TorchContract(BinarizerContract):
    """The contract, with the MLP's scores compared as numpy arrays."""

    file_key = "scripted"

    @pytest.fixture
    def model_file(self, files: dict[str, Path]) -> LoadedFile:
        return LoadedFile(path=str(files[self.file_key]))

    @pytest.fixture
    def predict_input(self, rows: np.ndarray) -> dict[str, Any]:
        return {"x": rows}

    def _predict(self, model: Any, predict_input: dict[str, Any]) -> Any:
        return super()._predict(model, predict_input).numpy()


class TestScriptedContract(TorchContract):
    name = "torchscript"

    @pytest.fixture
    def binarizer(self) -> TorchScriptBinarizer:
        return TorchScriptBinarizer()


class TestTracedContract(TorchContract):
    name = "torchscript"
    file_key = "traced"
    predict_method_name = "__call__"

    @pytest.fixture
    def binarizer(self) -> TorchScriptBinarizer:
        return TorchScriptBinarizer(num_threads=1,
                                    inputs={"x": {"dtype": "float32", "shape": [-1, 4]}})


@needs_export
class TestExportedContract(TorchContract):
    name = "torch"
    file_key = "exported"

    @pytest.fixture
    def binarizer(self) -> TorchBinarizer:
        return TorchBinarizer()


class TestPickledModuleContract(TorchContract):
    name = "torch"
    file_key = "pickled"

    @pytest.fixture
    def binarizer(self) -> TorchBinarizer:
        return TorchBinarizer()


class TestStateDictContract(TorchContract):
    name = "torch"
    file_key = "state_dict"

    @pytest.fixture
    def binarizer(self) -> TorchBinarizer:
        return TorchBinarizer(module="torch_test_models:MLP", module_kwargs={"width": 4})


# ---------------------------------------------------------------------- what each reads


@pytest.mark.parametrize("key", ["scripted", "traced", "exported", "pickled", "state_dict"])
def test_every_format_predicts_the_models_own_scores(
    files: dict[str, Path], key: str, rows: np.ndarray, expected: np.ndarray
) -> None:
    if key not in files:
        pytest.skip("this torch has no torch.export")
    binarizer = TorchBinarizer(module="torch_test_models.MLP") if key == "state_dict" else \
        TorchBinarizer() if key in ("pickled", "exported") else TorchScriptBinarizer()
    model = binarizer.deserialize([LoadedFile(path=str(files[key]))])
    assert isinstance(model, TorchModel)
    result = model.predict(x=rows)
    # in eval mode: Dropout(0.5) would otherwise change the scores from call to call
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert torch.is_inference(result)  # run under torch.inference_mode()
    if key != "exported":  # an exported graph keeps the mode it was exported in
        assert not model.module.training


def test_the_torch_binarizer_reads_torchscript_too(
    files: dict[str, Path], rows: np.ndarray, expected: np.ndarray
) -> None:
    model = TorchBinarizer().deserialize([LoadedFile(path=str(files["scripted"]))])
    assert model.kind == "torchscript"
    np.testing.assert_allclose(model(x=rows).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_a_legacy_torch_save_file_is_detected_and_read(
    tmp_path: Path, model: Any, rows: np.ndarray, expected: np.ndarray
) -> None:
    path = tmp_path / "legacy.bin"
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=False)
    file = LoadedFile(path=str(path))
    assert kind_of(file)[0] == "legacy_torch_save"
    assert scores(file) == {"torchscript": 0.0, "torch": 0.7}
    loaded = TorchBinarizer(module="torch_test_models:MLP").deserialize([file])
    np.testing.assert_allclose(loaded(x=rows).numpy(), expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- detection


@pytest.mark.parametrize(("key", "kind", "winner"), [
    ("scripted", "torchscript", "torchscript"),
    ("traced", "torchscript", "torchscript"),
    ("exported", "exported_program", "torch"),
    ("pickled", "torch_save", "torch"),
    ("state_dict", "torch_save", "torch"),
])
def test_detect_tells_the_archives_apart_by_their_entries(
    files: dict[str, Path], key: str, kind: str, winner: str
) -> None:
    if key not in files:
        pytest.skip("this torch has no torch.export")
    path = files[key]
    for file in (LoadedFile(path=str(path)),
                 LoadedFile(raw_data=path.read_bytes(), name="no-suffix"),  # bytes, no name
                 LoadedFile(path=str(path), name="model.pkl")):
        assert kind_of(file)[0] == kind
        found = scores(file)
        loser = "torch" if winner == "torchscript" else "torchscript"
        assert found == {winner: 0.95, loser: 0.0}


def test_detect_by_name_alone_never_ties() -> None:
    assert scores(LoadedFile(name="model.pt")) == {"torchscript": 0.0, "torch": 0.5}
    assert scores(LoadedFile(name="model.pth")) == {"torchscript": 0.0, "torch": 0.5}
    assert scores(LoadedFile(name="model.pt2")) == {"torchscript": 0.0, "torch": 0.5}
    assert scores(LoadedFile(name="model.ts")) == {"torchscript": 0.5, "torch": 0.0}


@pytest.mark.parametrize("content", [
    pickle.dumps({"a": 1}, protocol=4),             # a pickle: the pickle binarizer's
    b"\x08\x07\x12\x07pytorch",                     # the start of an ONNX ModelProto
    b"PK\x03\x04 not a zip after all",
    b"",
])
def test_files_of_other_formats_score_zero_even_named_pt(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    assert scores(LoadedFile(path=str(path))) == {"torchscript": 0.0, "torch": 0.0}


def test_a_zip_of_something_else_scores_zero(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"\x89HDF")
    assert scores(LoadedFile(path=str(path))) == {"torchscript": 0.0, "torch": 0.0}


# ---------------------------------------------------------------------- through core: auto


def up_for(path: Path, binarization_type: str = "auto", **kwargs: Any) -> UP:
    conf = Config(storage_type="disk", storage_kwargs={"path_to_files": str(path)},
                  binarization_type=binarization_type, binarization_kwargs=kwargs)
    up = UP(conf=conf, plugins=load_plugins())
    up.ml.load()
    return up


def test_auto_chooses_torchscript_for_a_torchscript_file(files: dict[str, Path]) -> None:
    up = up_for(files["scripted"])
    assert up.ml.binarizer_name == "torchscript"
    assert [a.name for a in up.ml.interface.arguments] == ["x"]


@pytest.mark.parametrize("key", ["pickled", "exported"])
def test_auto_refuses_an_unpinned_file_that_runs_code_in_one_line(files: dict[str, Path],
                                                                  key: str) -> None:
    if key not in files:
        pytest.skip("this torch has no torch.export")
    with pytest.raises(ConfigError) as caught:
        up_for(files[key])
    message = str(caught.value)
    assert "\n" not in message
    assert f"recognised {files[key].name} as a torch file" in message
    assert "binarization_type = 'torch'" in message and "binarization_kwargs.sha256" in message


def test_auto_loads_a_pinned_pickled_module_and_a_state_dict_with_its_class(
    files: dict[str, Path]
) -> None:
    digest = hashlib.sha256(files["pickled"].read_bytes()).hexdigest()
    assert up_for(files["pickled"], sha256=digest.upper()).ml.binarizer_name == "torch"
    assert up_for(files["state_dict"], module="torch_test_models:MLP").ml.binarizer_name == "torch"


# ---------------------------------------------------------------------- the sha256 pin


def test_a_file_that_does_not_match_its_pin_is_refused(files: dict[str, Path]) -> None:
    digest = hashlib.sha256(files["pickled"].read_bytes()).hexdigest()
    wrong = "0" * 64
    for file in (LoadedFile(path=str(files["pickled"])),
                 LoadedFile(raw_data=files["pickled"].read_bytes(), name="pickled.pt")):
        with pytest.raises(ModelLoadError) as caught:
            TorchBinarizer(sha256=wrong).deserialize([file])
        assert digest in str(caught.value) and wrong in str(caught.value)
    # the pin holds for a TorchScript file read by the torch binarizer too
    with pytest.raises(ModelLoadError, match=r"refusing to load scripted\.pt"):
        TorchBinarizer(sha256=wrong).deserialize([LoadedFile(path=str(files["scripted"]))])


def test_a_malformed_pin_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="64 hex digits"):
        build("binarizer", TorchBinarizer, {"sha256": "abc"}, "binarization_kwargs")


# ---------------------------------------------------------------------- state_dicts


def test_a_state_dict_without_its_class_says_to_name_it(files: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match=r"holds a state_dict .* binarization_kwargs\.module"):
        TorchBinarizer().deserialize([LoadedFile(path=str(files["state_dict"]))])


def test_a_pickled_module_is_not_read_as_a_state_dict(files: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError) as caught:
        TorchBinarizer(module="torch_test_models:MLP").deserialize(
            [LoadedFile(path=str(files["pickled"]))])
    assert "weights_only=True reads tensors only" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_state_dict_that_does_not_fit_its_class_names_the_keys(files: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError) as caught:
        TorchBinarizer(module="torch_test_models:MLP", module_kwargs={"hidden": 16}).deserialize(
            [LoadedFile(path=str(files["state_dict"]))])
    assert "does not fit torch_test_models:MLP" in str(caught.value)
    assert "size mismatch" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"module": "no_such_package.models:Net"}, "cannot import 'no_such_package.models'"),
    ({"module": "torch_test_models:Nope"}, "has no 'Nope'"),
    ({"module": "torch_test_models:mlp"}, "not a torch.nn.Module subclass"),
    ({"module": "torch_test_models:MLP", "module_kwargs": {"depth": 3}}, "unexpected keyword"),
])
def test_a_wrong_module_setting_is_a_config_error(files: dict[str, Path], kwargs: dict[str, Any],
                                                  fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        TorchBinarizer(**kwargs).deserialize([LoadedFile(path=str(files["state_dict"]))])


# ---------------------------------------------------------------------- settings


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"device": "cuda"}, "has no cuda device"),
    ({"device": "cuda:1"}, "has no cuda device"),
    ({"device": "gpu-please"}, "is not a torch device"),
    ({"device": ""}, "must be a device name"),
    ({"num_threads": 0}, "num_threads must be a whole number of at least 1"),
    ({"num_threads": True}, "num_threads must be a whole number"),
    ({"inputs": ["x"]}, "inputs must be a table"),
    ({"inputs": {"x": {"shape": [-1, 4]}}}, r"inputs.x must be \{ dtype"),
    ({"inputs": {"x": {"dtype": "float128"}}}, "inputs.x.dtype must be one of"),
    ({"inputs": {"x": {"dtype": "float32", "shape": [-2]}}}, "inputs.x.shape must be a list"),
    ({"module_kwargs": {"width": 4}}, "module_kwargs is set but module is not"),
    ({"module": "not a path"}, "package.module:Class"),
])
def test_wrong_settings_are_one_config_line(kwargs: dict[str, Any], fragment: str) -> None:
    if kwargs.get("device", "").startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=fragment) as caught:
        build("binarizer", TorchBinarizer, kwargs, "binarization_kwargs")
    assert "\n" not in str(caught.value)


def test_num_threads_sets_torchs_thread_count(files: dict[str, Path]) -> None:
    before = torch.get_num_threads()
    try:
        TorchScriptBinarizer(num_threads=1).deserialize([LoadedFile(path=str(files["scripted"]))])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_inputs_must_name_forwards_arguments(files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"inputs names y, which scripted.pt's forward\(x"):
        TorchScriptBinarizer(inputs={"y": {"dtype": "float32"}}).deserialize(
            [LoadedFile(path=str(files["scripted"]))])


def test_the_torchscript_binarizer_sends_what_may_run_code_to_torch(files: dict[str, Path]) -> None:
    torch_save = r"is a torch\.save file .* binarization_type = 'torch'"
    with pytest.raises(ModelLoadError, match=torch_save):
        TorchScriptBinarizer().deserialize([LoadedFile(path=str(files["pickled"]))])
    if "exported" in files:
        with pytest.raises(ModelLoadError,
                           match=r"is an exported program .* binarization_type = 'torch'"):
            TorchScriptBinarizer().deserialize([LoadedFile(path=str(files["exported"]))])


@pytest.mark.parametrize("key", ["scripted", "pickled"])
def test_a_corrupt_file_is_one_line(tmp_path: Path, files: dict[str, Path], key: str) -> None:
    path = tmp_path / files[key].name
    data = files[key].read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut in half: no central directory
    binarizer = TorchScriptBinarizer() if key == "scripted" else TorchBinarizer()
    with pytest.raises(ModelLoadError) as caught:
        binarizer.deserialize([LoadedFile(path=str(path))])
    assert "\n" not in str(caught.value) and path.name in str(caught.value)


# ---------------------------------------------------------------------- what core analyses


@pytest.mark.parametrize("method", ["predict", "__call__", "forward"])
def test_forwards_signature_is_the_request(files: dict[str, Path], method: str) -> None:
    model = TorchScriptBinarizer().deserialize([LoadedFile(path=str(files["scripted"]))])
    interface = analyse(model, predict_method_name=method)
    assert [(a.name, a.kind, a.is_rows) for a in interface.arguments] == [("x", "array", True)]


def test_other_arguments_and_a_modules_own_predict(tmp_path: Path, rows: np.ndarray) -> None:
    torch.manual_seed(1)
    scaled = torch_test_models.Scaled().eval()
    path = tmp_path / "scaled.pt"
    torch.save(scaled, path)
    model = TorchBinarizer().deserialize([LoadedFile(path=str(path))])
    forward = analyse(model, predict_method_name="__call__")
    assert [(a.name, a.kind, a.required, a.default) for a in forward.arguments] == [
        ("x", "array", True, None), ("scale", "float", False, 1.0)]
    with torch.no_grad():
        scores = scaled(torch.from_numpy(rows), 2.0).numpy()
    np.testing.assert_allclose(forward.call({"x": rows, "scale": 2.0}).numpy(), scores, rtol=1e-5)
    own = analyse(model, predict_method_name="predict")  # Scaled.predict: the argmax
    assert own.call({"x": rows}).tolist() == scores.argmax(axis=1).tolist()
    # a scripted module: the argument's type and default come from its TorchScript schema
    script_path = tmp_path / "scaled.ts"
    torch.jit.save(torch.jit.script(scaled), str(script_path))
    scripted = TorchScriptBinarizer().deserialize([LoadedFile(path=str(script_path))])
    assert [(a.name, a.kind, a.default) for a in analyse(scripted).arguments] == [
        ("x", "array", None), ("scale", "float", 1.0)]


def test_an_unknown_method_lists_what_the_model_has(files: dict[str, Path]) -> None:
    from core.errors import ModelAnalysisError

    model = TorchScriptBinarizer().deserialize([LoadedFile(path=str(files["scripted"]))])
    with pytest.raises(ModelAnalysisError, match=r"no method 'predict_proba'.*forward.*predict"):
        analyse(model, predict_method_name="predict_proba")


def test_declared_inputs_are_validated_tensors(files: dict[str, Path]) -> None:
    model = TorchScriptBinarizer(inputs={"x": {"dtype": "float32", "shape": [-1, 4]}}).deserialize(
        [LoadedFile(path=str(files["scripted"]))])
    (argument,) = analyse(model).arguments
    assert argument.tensor == Tensor("float32", (None, 4))


@needs_export
def test_an_exported_program_declares_its_tensors(files: dict[str, Path], tmp_path: Path,
                                                  rows: np.ndarray) -> None:
    model = TorchBinarizer().deserialize([LoadedFile(path=str(files["exported"]))])
    interface = analyse(model)
    assert [(a.name, a.tensor) for a in interface.arguments] == [
        ("x", Tensor("float32", (None, 4)))]
    assert interface.outputs == Outputs({"output": Tensor("float32", (None, 3))})
    torch.manual_seed(2)
    heads = torch_test_models.TwoHeads().eval()
    path = tmp_path / "heads.pt2"
    program = torch.export.export(heads, (torch.from_numpy(rows),),
                                  dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, str(path))
    two = analyse(TorchBinarizer().deserialize([LoadedFile(path=str(path))]))
    assert two.outputs == Outputs({"output_0": Tensor("float32", (None, 3)),
                                   "output_1": Tensor("float32", (None,))})
