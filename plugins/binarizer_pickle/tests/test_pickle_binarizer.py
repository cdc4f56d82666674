from __future__ import annotations

import hashlib
import logging
import pickle
import re
import tracemalloc
from pathlib import Path
from typing import Any

import attrs
import cloudpickle
import numpy as np
import pytest
from core import progress
from core.components import LoadedFile, Storage
from core.errors import ConfigError, ModelLoadError
from core.hookspecs import hookimpl
from core.ml import build
from core.testing import BinarizerContract

from core_binarizer_pickle import PickleBinarizer, file_sha256


class Scaler:
    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.weights = np.arange(4, dtype=np.float64)

    def predict(self, X: Any) -> Any:
        return np.asarray(X) * self.factor


def write_model(path: Path, model: Any = None, protocol: int = 5) -> Path:
    path.write_bytes(cloudpickle.dumps(model if model is not None else Scaler(2.0), protocol))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TestPickleBinarizerContract(BinarizerContract):
    name = "pickle"

    @pytest.fixture
    def binarizer(self) -> PickleBinarizer:
        return PickleBinarizer()

    @pytest.fixture
    def model_file(self, tmp_path: Path) -> LoadedFile:
        return LoadedFile(path=str(write_model(tmp_path / "model.pkl")))

    @pytest.fixture
    def predict_input(self) -> dict[str, Any]:
        return {"X": [[1.0, 2.0], [3.0, 4.0]]}


class TestPinnedPickleBinarizerContract(TestPickleBinarizerContract):
    @pytest.fixture
    def model_file(self, tmp_path: Path) -> LoadedFile:
        # No pickle file name: detection has to read the protocol marker.
        return LoadedFile(path=str(write_model(tmp_path / "model.bin")))

    @pytest.fixture
    def binarizer(self, model_file: LoadedFile) -> PickleBinarizer:
        return PickleBinarizer(sha256=sha(Path(str(model_file.path))))


# ---------------------------------------------------------------------- reading


def test_reads_from_path_and_from_bytes(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m.pkl")
    from_path = PickleBinarizer().deserialize([LoadedFile(path=str(path))])
    from_bytes = PickleBinarizer().deserialize([LoadedFile(raw_data=path.read_bytes())])
    from_bytearray = PickleBinarizer().deserialize(
        [LoadedFile(raw_data=bytearray(path.read_bytes()))]
    )  # type: ignore[arg-type]
    for model in (from_path, from_bytes, from_bytearray):
        assert isinstance(model, Scaler)
        assert model.predict([[1.0]]).tolist() == [[2.0]]


def test_raw_data_is_preferred_over_the_path(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m.pkl", Scaler(2.0))
    raw = cloudpickle.dumps(Scaler(3.0))
    model = PickleBinarizer().deserialize([LoadedFile(path=str(path), raw_data=raw)])
    assert model.factor == 3.0


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_protocol(tmp_path: Path, protocol: int) -> None:
    path = write_model(tmp_path / "m.pkl", protocol=protocol)
    assert PickleBinarizer().deserialize([LoadedFile(path=str(path))]).factor == 2.0


def test_lambda_models_from_cloudpickle(tmp_path: Path) -> None:
    holder = Scaler(1.0)
    holder.predict = lambda X: [len(X)]  # type: ignore[method-assign]
    path = write_model(tmp_path / "m.cloudpickle", holder)
    assert PickleBinarizer().deserialize([LoadedFile(path=str(path))]).predict([1, 2]) == [2]


def test_streaming_peaks_near_the_model_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A protocol-5 pickle of numpy arrays is read into place, not read whole first."""
    size = 32 * 1024 * 1024
    model = Scaler(1.0)
    model.weights = np.ones(size // 8, dtype=np.float64)
    path = write_model(tmp_path / "big.pkl", model)
    del model
    for threshold in (2**62, 1):  # without, then with the progress wrapper
        monkeypatch.setattr(progress, "PROGRESS_THRESHOLD", threshold)
        tracemalloc.start()
        try:
            loaded = PickleBinarizer().deserialize([LoadedFile(path=str(path))])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert loaded.weights.nbytes == size
        assert peak < 1.25 * size, f"peak {peak / size:.2f}x the model size"
        del loaded


def test_big_files_log_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress, "PROGRESS_THRESHOLD", 1000)
    monkeypatch.setattr(progress, "CHUNK_SIZE", 1000)
    model = Scaler(1.0)
    model.weights = np.ones(10_000)
    path = write_model(tmp_path / "big.pkl", model)
    with caplog.at_level(logging.INFO, logger="core"):
        PickleBinarizer(sha256=sha(path)).deserialize([LoadedFile(path=str(path))])
    lines = [r.getMessage() for r in caplog.records if r.name == "core"]
    for what in ("hashing", "unpickling"):
        percents = [
            int(m[1]) for line in lines if (m := re.match(rf"{what} big\.pkl: (\d+)%", line))
        ]
        assert percents and percents == sorted(percents) and percents[-1] >= 90, lines
        assert any(line.startswith(f"{what} big.pkl: done") for line in lines)


def test_small_files_log_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_model(tmp_path / "m.pkl")
    with caplog.at_level(logging.INFO, logger="core"):
        PickleBinarizer(sha256=sha(path)).deserialize([LoadedFile(path=str(path))])
    assert not caplog.records


def test_joblib_file_without_joblib_is_read_as_a_pickle(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m.joblib")
    assert PickleBinarizer().deserialize([LoadedFile(path=str(path))]).factor == 2.0


def test_joblib_files_use_joblib(tmp_path: Path) -> None:
    import joblib  # in the plugin's test extra

    model = Scaler(5.0)
    model.weights = np.arange(1000.0)
    path = tmp_path / "m.joblib"
    joblib.dump(model, path, compress=3)
    for file in (
        LoadedFile(path=str(path)),
        LoadedFile(raw_data=path.read_bytes(), name="m.joblib"),
    ):
        loaded = PickleBinarizer().deserialize([file])
        assert loaded.factor == 5.0 and loaded.weights.tolist() == model.weights.tolist()


# ---------------------------------------------------------------------- sha256


def test_sha256_match(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m.pkl")
    digest = sha(path)
    assert file_sha256(path) == digest
    for binarizer in (PickleBinarizer(sha256=digest), PickleBinarizer(sha256=digest.upper())):
        assert binarizer.deserialize([LoadedFile(path=str(path))]).factor == 2.0
        assert binarizer.deserialize([LoadedFile(raw_data=path.read_bytes())]).factor == 2.0


def test_sha256_mismatch_is_refused_before_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Trap:
        def __reduce__(self) -> Any:
            return (marker.write_text, ("unpickled",))

    path = write_model(tmp_path / "m.pkl", Trap())
    expected = "0" * 64
    for file in (LoadedFile(path=str(path)), LoadedFile(raw_data=path.read_bytes(), name="m.pkl")):
        with pytest.raises(ModelLoadError) as caught:
            PickleBinarizer(sha256=expected).deserialize([file])
        message = str(caught.value)
        assert "m.pkl" in message and expected in message and sha(path) in message
        assert "\n" not in message
    assert not marker.exists()
    PickleBinarizer().deserialize([LoadedFile(path=str(path))])  # the trap works unpinned
    assert marker.read_text() == "unpickled"


@pytest.mark.parametrize("value", ["abc", "g" * 64, 42, "0" * 63])
def test_bad_sha256_setting(value: Any) -> None:
    with pytest.raises(ConfigError, match="64 hex digits"):
        PickleBinarizer(sha256=value)


def test_unknown_setting_lists_sha256() -> None:
    with pytest.raises(ConfigError) as caught:
        build("binarizer", PickleBinarizer, {"sha": "x"}, "binarization_kwargs")
    assert "sha" in str(caught.value) and "it accepts: sha256" in str(caught.value)


# ---------------------------------------------------------------------- errors


def test_missing_module_is_named(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(b"\x80\x02cno_such_module_for_core_tests\nModel\n)\x81.")
    with pytest.raises(ModelLoadError, match="needs the module 'no_such_module_for_core_tests'"):
        PickleBinarizer().deserialize([LoadedFile(path=str(path))])


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(cloudpickle.dumps(Scaler(1.0))[:-10])
    with pytest.raises(ModelLoadError, match=r"cannot unpickle m\.pkl"):
        PickleBinarizer().deserialize([LoadedFile(path=str(path))])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"cannot open .*nope\.pkl"):
        PickleBinarizer().deserialize([LoadedFile(path=str(tmp_path / "nope.pkl"))])


def test_nothing_to_read() -> None:
    with pytest.raises(ModelLoadError, match="neither a path nor bytes"):
        PickleBinarizer().deserialize([LoadedFile(name="ghost")])
    with pytest.raises(ModelLoadError, match="no file"):
        PickleBinarizer().deserialize([])


# ---------------------------------------------------------------------- detect


@pytest.mark.parametrize(
    "name", ["m.pkl", "m.PKL", "m.pckl", "m.pickle", "m.joblib", "m.cloudpickle"]
)
def test_detect_by_extension(tmp_path: Path, name: str) -> None:
    score, reason = PickleBinarizer.detect(LoadedFile(path=str(tmp_path / name)))
    assert score == 0.9 and name.lower()[1:] in reason
    assert PickleBinarizer.detect(LoadedFile(raw_data=b"", name=name))[0] == 0.9


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_detect_by_protocol_marker(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(pickle.dumps([1, 2], protocol=protocol))
    score, reason = PickleBinarizer.detect(LoadedFile(path=str(path)))
    assert score == 0.6 and f"protocol {protocol}" in reason
    assert PickleBinarizer.detect(LoadedFile(raw_data=path.read_bytes()))[0] == 0.6


@pytest.mark.parametrize(
    "content", [pickle.dumps([1], protocol=0), b"\x08\x07\x12", b"\x80\x06", b"\x80", b""]
)
def test_detect_other_content(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    assert PickleBinarizer.detect(LoadedFile(path=str(path))) == (
        0.0,
        "neither a pickle file name nor a pickle protocol 2-5 marker",
    )


def test_detect_unreadable() -> None:
    assert PickleBinarizer.detect(LoadedFile(path="/nonexistent/model.bin"))[0] == 0.0


# ---------------------------------------------------------------------- through core


@attrs.define(kw_only=True)
class FileStorage(Storage):
    path: str
    need_load_file: bool = False

    def load(self) -> list[LoadedFile]:
        raw = Path(self.path).read_bytes() if self.need_load_file else None
        return [LoadedFile(path=self.path, raw_data=raw)]


class _TestStorages:
    @hookimpl
    def register_storages(self, register: Any) -> None:
        register("test-files", FileStorage)


@pytest.mark.parametrize("need_load_file", [False, True])
def test_core_auto_detects_and_serves(tmp_path: Path, need_load_file: bool) -> None:
    from core.config import Config
    from core.plugins import load_plugins
    from core.up import UP

    path = write_model(tmp_path / "model.bin")
    conf = Config(
        storage_type="test-files",
        storage_kwargs={"path": str(path), "need_load_file": need_load_file},
        binarization_type="auto",
        binarization_kwargs={"sha256": sha(path)},
    )
    up = UP(conf=conf, plugins=load_plugins([_TestStorages()]))
    up.ml.load()
    assert up.ml.binarizer_name == "pickle"
    assert np.asarray(up.predict(X=[[1.0, 2.0]])).tolist() == [[2.0, 4.0]]


def test_core_auto_does_not_unpickle_an_unpinned_file(tmp_path: Path) -> None:
    """Unpickling runs code: ``auto`` recognises the file but refuses it until the config
    names the pickle binarizer or pins the file's sha256."""
    from core.config import Config
    from core.errors import ConfigError
    from core.plugins import load_plugins
    from core.up import UP

    path = write_model(tmp_path / "model.pkl")
    plugins = load_plugins([_TestStorages()])
    storage = {"storage_type": "test-files", "storage_kwargs": {"path": str(path)}}
    up = UP(conf=Config(**storage, binarization_type="auto"), plugins=plugins)
    refusal = (r"recognised model.pkl as a pickle file; reading one runs the code .*"
               r" binarization_type = 'pickle' .* binarization_kwargs.sha256")
    with pytest.raises(ConfigError, match=refusal):
        up.ml.load()
    assert not up.ml.loaded
    pinned = {"sha256": sha(path)}
    for conf in (Config(**storage, binarization_type="pickle"),
                 Config(**storage, binarization_type="auto", binarization_kwargs=pinned)):
        up = UP(conf=conf, plugins=plugins)
        up.ml.load()
        assert up.ml.binarizer_name == "pickle"
