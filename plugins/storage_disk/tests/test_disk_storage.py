from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
from core import progress
from core.errors import ConfigError, ModelLoadError
from core.ml import build
from core.testing import StorageContract

from core_storage_disk import DEFAULT_FILE_MASK, DiskStorage


class TestDiskStorageContract(StorageContract):
    name = "disk"

    @pytest.fixture
    def storage(self, tmp_path: Path) -> DiskStorage:
        (tmp_path / "model.pkl").write_bytes(b"\x80\x05model")
        (tmp_path / "README.txt").write_text("not the model")
        return DiskStorage(path_to_files=str(tmp_path))


class TestDiskStorageWithBytesContract(StorageContract):
    name = "disk"

    @pytest.fixture
    def storage(self, tmp_path: Path) -> DiskStorage:
        (tmp_path / "model.onnx").write_bytes(b"\x08\x07onnx")
        return DiskStorage(path_to_files=str(tmp_path / "model.onnx"), need_load_file=True)


# ---------------------------------------------------------------------- the default mask


@pytest.mark.parametrize(
    "name",
    [
        "model.pkl",
        "model.pckl",
        "model.pickle",
        "model.joblib",
        "model.onnx",
        "model.cloudpickle",
        "weights.bin",
        "iris.model",
        "MODEL.PKL",
        "Model.Onnx",
        "my-model_v2.1.pkl",
        "модель.pkl",
    ],
)
def test_default_mask_matches_model_files(name: str) -> None:
    assert re.search(DEFAULT_FILE_MASK, name)


@pytest.mark.parametrize(
    "name", ["model.py", "model.pkl.bak", "README.md", "data.csv", ".pkl", "model.pkl~"]
)
def test_default_mask_skips_other_files(name: str) -> None:
    assert not re.search(DEFAULT_FILE_MASK, name)


def test_folder_with_one_model_among_other_files(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "labels.json").write_text("{}")
    (tmp_path / "sub.pkl").mkdir()  # a folder whose name matches is not a file
    [file] = DiskStorage(path_to_files=str(tmp_path)).load()
    assert file.path == str(tmp_path / "model.onnx")
    assert file.raw_data is None
    assert file.display_name == "model.onnx"


def test_a_file_path_is_taken_whatever_the_mask(tmp_path: Path) -> None:
    (tmp_path / "weights.dat").write_bytes(b"x")
    storage = DiskStorage(path_to_files=str(tmp_path / "weights.dat"), file_mask=r".*\.pkl")
    assert [f.path for f in storage.load()] == [str(tmp_path / "weights.dat")]


def test_path_like_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(b"x")
    storage = DiskStorage(path_to_files=tmp_path)  # type: ignore[arg-type]
    assert storage.path_to_files == str(tmp_path)
    assert storage.load()[0].path == str(tmp_path / "m.pkl")


def test_user_folder_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m.pkl").write_bytes(b"x")
    assert DiskStorage(path_to_files="~/m.pkl").load()[0].path == str(tmp_path / "m.pkl")


def test_custom_mask_picks_one_of_several(tmp_path: Path) -> None:
    for name in ("a.pkl", "b.pkl"):
        (tmp_path / name).write_bytes(name.encode())
    [file] = DiskStorage(path_to_files=str(tmp_path), file_mask=r"b\.pkl").load()
    assert file.display_name == "b.pkl"


# ---------------------------------------------------------------------- need_load_file


def test_need_load_file_false_reads_nothing(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(b"abc")
    [file] = DiskStorage(path_to_files=str(tmp_path), need_load_file=False).load()
    assert file.raw_data is None


def test_need_load_file_true_reads_the_bytes(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(b"abc")
    [file] = DiskStorage(path_to_files=str(tmp_path), need_load_file=True).load()
    assert file.raw_data == b"abc"
    assert file.path == str(tmp_path / "m.pkl")


def test_big_file_is_read_in_place_with_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress, "PROGRESS_THRESHOLD", 1000)
    monkeypatch.setattr(progress, "CHUNK_SIZE", 100)
    payload = os.urandom(1000)
    (tmp_path / "big.bin").write_bytes(payload)
    with caplog.at_level(logging.INFO, logger="core"):
        [file] = DiskStorage(path_to_files=str(tmp_path), need_load_file=True).load()
    assert isinstance(file.raw_data, bytearray)
    assert file.raw_data == payload
    lines = [r.getMessage() for r in caplog.records if r.name == "core"]
    percents = [int(m[1]) for line in lines if (m := re.match(r"reading big\.bin: (\d+)%", line))]
    assert percents == list(range(10, 100, 10))
    assert lines[-1].startswith("reading big.bin: done")


def test_small_file_logs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "m.pkl").write_bytes(b"abc")
    with caplog.at_level(logging.INFO, logger="core"):
        DiskStorage(path_to_files=str(tmp_path), need_load_file=True).load()
    assert not caplog.records


def test_unreadable_file_is_a_model_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(b"abc")
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads every file: pretend it cannot
        real_open = open

        def refuse(file: object, *args: object, **kwargs: object) -> object:
            if str(file) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

        monkeypatch.setattr("builtins.open", refuse)
        monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    storage = DiskStorage(path_to_files=str(path), need_load_file=True)
    with pytest.raises(ModelLoadError, match=r"cannot read .*m\.pkl: Permission denied"):
        storage.load()
    with pytest.raises(ConfigError, match="not readable"):
        storage.check()


# ---------------------------------------------------------------------- errors


def test_missing_path_names_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope" / "model.pkl")
    storage = DiskStorage(path_to_files=missing)
    with pytest.raises(ModelLoadError, match=re.escape(repr(missing)) + " does not exist"):
        storage.load()
    with pytest.raises(ConfigError, match="does not exist"):
        storage.check()


def test_missing_relative_path_names_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError, match=f"relative to {re.escape(str(tmp_path))}"):
        DiskStorage(path_to_files="models/m.pkl").load()


def test_no_match_names_the_folder_the_mask_and_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("x")
    (tmp_path / "data").mkdir()
    storage = DiskStorage(path_to_files=str(tmp_path))
    with pytest.raises(ModelLoadError) as caught:
        storage.load()
    message = str(caught.value)
    assert str(tmp_path) in message
    assert f"'{DEFAULT_FILE_MASK}'" in message  # as written in TOML, not repr()-escaped
    assert "it holds: data/, notes.md" in message
    assert "file_mask" in message and "\n" not in message
    with pytest.raises(ConfigError, match="no file in the folder"):
        storage.check()


# ---------------------------------------------------------------------- other model formats


@pytest.mark.parametrize("name", ["model.json", "booster.ubj", "gbm.txt", "net.pt", "net.pth",
                                  "program.pt2", "script.ts", "classifier.keras", "weights.H5"])
def test_a_lone_file_of_another_format_is_taken(tmp_path: Path, name: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """No file with a usual model name: the one named like another format (XGBoost's JSON,
    LightGBM's text, PyTorch, Keras) is the model, and the log says why."""
    (tmp_path / name).write_bytes(b"x")
    (tmp_path / "README.md").write_text("not a model")
    with caplog.at_level(logging.INFO, logger="core"):
        [file] = DiskStorage(path_to_files=str(tmp_path)).load()
    assert file.path == str(tmp_path / name)
    assert f"using {name}, the one file named like another model format" in caplog.text
    DiskStorage(path_to_files=str(tmp_path)).check()


def test_a_usual_model_name_wins_over_other_formats(tmp_path: Path) -> None:
    for name in ("model.pkl", "config.json", "requirements.txt"):
        (tmp_path / name).write_bytes(b"x")
    [file] = DiskStorage(path_to_files=str(tmp_path)).load()
    assert file.path == str(tmp_path / "model.pkl")


def refusal(folder: Path, names: tuple[str, ...]) -> str:
    """The one line refusing a folder holding ``names``: at load, and the same at check."""
    for name in names:
        (folder / name).write_bytes(b"x")
    storage = DiskStorage(path_to_files=str(folder))
    with pytest.raises(ModelLoadError) as caught:
        storage.load()
    with pytest.raises(ConfigError) as checked:
        storage.check()
    assert str(checked.value) == str(caught.value) and "\n" not in str(caught.value)
    return str(caught.value)


def test_several_files_of_other_formats_are_an_error_naming_them(tmp_path: Path) -> None:
    message = refusal(tmp_path, ("config.json", "model.json", "notes.md"))
    assert "2 are named like other model formats: config.json, model.json;" in message
    assert r"set storage_kwargs.file_mask to pick one (for example '^config\.json$')" in message
    assert "notes.md" not in message


@pytest.mark.parametrize("key", ["file_mask", "files_mask"])
def test_a_mask_set_in_the_config_is_the_only_rule(tmp_path: Path, key: str) -> None:
    (tmp_path / "model.json").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=f"no file in the folder .* matches {key} 'iris'; "
                                             "it holds: model.json"):
        DiskStorage(path_to_files=str(tmp_path), **{key: "iris"}).load()


def test_empty_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="it is empty"):
        DiskStorage(path_to_files=str(tmp_path)).load()


def test_long_listing_is_cut(tmp_path: Path) -> None:
    for index in range(25):
        (tmp_path / f"f{index:02}.txt").write_text("x")
    with pytest.raises(ModelLoadError, match=r"f19\.txt and 5 more"):
        DiskStorage(path_to_files=str(tmp_path)).load()


def test_several_matches_are_listed_with_a_hint(tmp_path: Path) -> None:
    message = refusal(tmp_path, ("a.pkl", "b.onnx", "c.txt"))
    assert "2 files" in message and "a.pkl, b.onnx" in message and "c.txt" not in message
    assert "set storage_kwargs.file_mask" in message and r"'^a\.pkl$'" in message


def test_check_passes_without_reading(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    DiskStorage(path_to_files=str(tmp_path), need_load_file=True).check()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"path_to_files": "x", "file_mask": "model(.pkl"}, "not a valid regular expression"),
        ({"path_to_files": "x", "file_mask": ""}, "must be a regular expression string"),
        ({"path_to_files": 3}, "must be a path"),
        ({"path_to_files": ""}, "must be a path"),
        ({"path_to_files": "x", "need_load_file": "yes"}, "must be true or false"),
    ],
)
def test_bad_settings_are_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DiskStorage(**kwargs)  # type: ignore[arg-type]


def test_missing_and_unknown_settings_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        build("storage", DiskStorage, {"path": "x"}, "storage_kwargs")
    message = str(caught.value)
    assert "path" in message and "path_to_files, file_mask, files_mask, need_load_file" in message
    with pytest.raises(ConfigError, match="path_to_files"):
        build("storage", DiskStorage, {}, "storage_kwargs")


# ---------------------------------------------------------------------- pymlup's masks
# pymlup's DiskStorage takes the mask as ``files_mask`` and searches for it in each file name
# (re.search); its docs (the seeds) spell the key ``file_mask``. Both names work, searched.


def _folder(tmp_path: Path, *names: str) -> Path:
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


@pytest.mark.parametrize("key", ["file_mask", "files_mask"])
@pytest.mark.parametrize(
    ("mask", "found"),
    [
        (r"(\w.-_)*.pckl", "model.pckl"),  # pymlup's default: it finds ".pckl" anywhere
        (r"\.pckl$", "model.pckl"),
        ("model", "model.pckl"),
        ("scikit-learn-binary_cls_model.pckl", "scikit-learn-binary_cls_model.pckl"),
    ],
)
def test_pymlup_masks_find_files_as_in_pymlup(
    tmp_path: Path, key: str, mask: str, found: str
) -> None:
    folder = _folder(tmp_path, found, "labels.json", "README.md")
    [file] = DiskStorage(path_to_files=str(folder), **{key: mask}).load()
    assert file.display_name == found


def test_pymlup_default_mask_finds_nothing_else(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "model.onnx", "notes.txt")
    expected = r"no file in the folder .* matches files_mask '\(\\w\.-_\)\*\.pckl'"
    with pytest.raises(ModelLoadError, match=expected):
        DiskStorage(path_to_files=str(folder), files_mask=r"(\w.-_)*.pckl").load()


def test_a_compiled_pattern_is_accepted_as_in_pymlup(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "model.joblib", "model.pckl")
    mask = re.compile(r"\.JOBLIB$", re.I)
    [file] = DiskStorage(path_to_files=str(folder), files_mask=mask).load()
    assert file.display_name == "model.joblib"


def test_the_joblib_mask_of_pymlups_tests_on_a_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """pymlup's test_load_single_file_by_not_default_mask: a file path and a mask it matches."""
    path = _folder(tmp_path, "joblib_print_model.joblib") / "joblib_print_model.joblib"
    with caplog.at_level(logging.WARNING, logger="core"):
        storage = DiskStorage(
            path_to_files=str(path), files_mask=r"(\w.-_)*.joblib", need_load_file=True
        )
        [file] = storage.load()
    assert file.path == str(path) and file.raw_data == b"x"
    assert not caplog.records


def test_a_file_that_the_given_mask_misses_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _folder(tmp_path, "model.onnx") / "model.onnx"
    with caplog.at_level(logging.WARNING, logger="core"):
        [file] = DiskStorage(path_to_files=str(path), files_mask=r"(\w.-_)*.pckl").load()
    assert file.path == str(path)
    [record] = caplog.records
    assert "files_mask '(\\w.-_)*.pckl' does not match its name" in record.getMessage()


def test_both_names_at_once_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError, match="sets both file_mask and files_mask") as caught:
        DiskStorage(path_to_files="x", file_mask="a", files_mask="b")
    assert "\n" not in str(caught.value)


def test_a_bad_files_mask_is_named(tmp_path: Path) -> None:
    expected = r"storage_kwargs.files_mask 'model\(' is not a valid regular expression"
    with pytest.raises(ConfigError, match=expected):
        DiskStorage(path_to_files=str(tmp_path), files_mask="model(")


def test_of_several_found_names_the_one_matched_whole_is_taken(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "model.pkl", "model.pkl.sha256")
    [file] = DiskStorage(path_to_files=str(folder), file_mask=r"model\.pkl").load()
    assert file.display_name == "model.pkl"


def test_several_found_names_and_none_whole_is_an_error_naming_them(tmp_path: Path) -> None:
    """pymlup loaded every match and served whichever os.listdir gave first; core asks."""
    folder = _folder(tmp_path, "a.pckl", "b.pckl")
    expected = r"2 files .* match files_mask .*: a\.pckl, b\.pckl; set storage_kwargs.files_mask"
    with pytest.raises(ModelLoadError, match=expected):
        DiskStorage(path_to_files=str(folder), files_mask=r"(\w.-_)*.pckl").load()


def test_the_effective_mask_is_shown_as_file_mask(tmp_path: Path) -> None:
    assert DiskStorage(path_to_files="x", files_mask=r"\.onnx$").file_mask == r"\.onnx$"
    assert DiskStorage(path_to_files="x").file_mask == DEFAULT_FILE_MASK
