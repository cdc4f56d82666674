"""core.model_files: which file of a folder is the model (the rule the folder storages share)."""

from __future__ import annotations

import logging
import re

import pytest

from core.errors import ConfigError, ModelLoadError
from core.model_files import DEFAULT_FILE_MASK, LISTED, OTHER_MODEL_FILES, listing, pick

DEFAULT = re.compile(DEFAULT_FILE_MASK)


def choose(names: list[str], pattern: re.Pattern[str] = DEFAULT, **options: object) -> str:
    settings: dict[str, object] = {"mask_given": pattern is not DEFAULT, "mask_key": "file_mask",
                                   "storage": "test storage", "where": "the folder 'm'",
                                   "holds": "it holds: " + listing(names), "error": ModelLoadError}
    settings.update(options)
    return pick(names, pattern, **settings)  # type: ignore[arg-type]


def test_the_one_usual_model_name() -> None:
    assert choose(["README.txt", "config.json", "model.onnx"]) == "model.onnx"


def test_of_several_matches_the_one_whose_whole_name_matches() -> None:
    assert choose(["iris.onnx", "iris.onnx.bak"], re.compile(r"iris\.onnx")) == "iris.onnx"


def test_several_matches_name_them_and_the_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        choose(["a.pkl", "b.onnx"], error=ConfigError, mask_key="files_mask")
    assert str(caught.value) == (
        f"test storage: 2 files in the folder 'm' match files_mask '{DEFAULT_FILE_MASK}': a.pkl, "
        r"b.onnx; set storage_kwargs.files_mask to pick one (for example '^a\.pkl$') or "
        "path_to_files to the file")


@pytest.mark.parametrize("name", ["model.json", "m.UBJ", "gbm.txt", "net.pt", "net.pth", "p.pt2",
                                  "s.ts", "s.ptl", "k.keras", "k.h5", "k.hdf5"])
def test_another_format_when_no_usual_name(name: str, caplog: pytest.LogCaptureFixture) -> None:
    assert re.search(OTHER_MODEL_FILES, name)
    with caplog.at_level(logging.INFO, logger="core"):
        assert choose(["README.md", name]) == name
    assert (f"test storage: no file in the folder 'm' matches the default file_mask; using {name}, "
            "the one file named like another model format") in caplog.text


def test_other_formats_only_without_a_mask_of_the_configs() -> None:
    with pytest.raises(ModelLoadError, match=r"matches file_mask 'iris'; it holds: model\.json\. "
                                             "Set storage_kwargs.file_mask"):
        choose(["model.json"], re.compile("iris"))


def test_two_files_of_other_formats_are_no_guess() -> None:
    with pytest.raises(ModelLoadError) as caught:
        choose(["config.json", "model.json", "notes.md"])
    assert str(caught.value) == (
        f"test storage: no file in the folder 'm' matches the default file_mask "
        f"'{DEFAULT_FILE_MASK}', and 2 are named like other model formats: config.json, "
        r"model.json; set storage_kwargs.file_mask to pick one (for example '^config\.json$') "
        "or path_to_files to the file")


def test_nothing_at_all_says_what_the_folder_holds() -> None:
    with pytest.raises(ModelLoadError) as caught:
        choose(["notes.md", "data.csv"])
    assert str(caught.value) == (
        f"test storage: no file in the folder 'm' matches file_mask '{DEFAULT_FILE_MASK}'; it "
        "holds: notes.md, data.csv. Set storage_kwargs.file_mask to a regular expression found "
        "in the model file's name, or path_to_files to the file")


def test_listing_is_cut() -> None:
    names = [f"f{index:02}" for index in range(LISTED + 5)]
    assert listing(names) == ", ".join(names[:LISTED]) + " and 5 more"
    assert listing(["a", "b"]) == "a, b"
