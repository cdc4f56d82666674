"""The ``lightgbm`` binarizer on real LightGBM text model files: the contract suite, the
served model's predictions against LightGBM's own, its settings, its errors and detection."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from core.analysis import analyse
from core.components import LoadedFile
from core.errors import ConfigError, ModelLoadError, ValidationError
from core.ml import build
from core.testing import BinarizerContract

from core_binarizer_lightgbm import LightGBMBinarizer, LightGBMClassifierModel, LightGBMModel


def load(path: Path, **settings: Any) -> Any:
    return LightGBMBinarizer(**settings).deserialize([LoadedFile(path=str(path))])


class TestLightGBMBinarizerContract(BinarizerContract):
    name = "lightgbm"
    imported_to_load = ("lightgbm",)

    @pytest.fixture
    def binarizer(self) -> LightGBMBinarizer:
        return LightGBMBinarizer()

    @pytest.fixture
    def model_file(self, regression: Path) -> LoadedFile:
        return LoadedFile(path=str(regression))

    @pytest.fixture
    def predict_input(self, rows: np.ndarray) -> dict[str, Any]:
        return {"X": rows.tolist()}


class TestClassifierContract(TestLightGBMBinarizerContract):
    predict_method_name = "predict_proba"

    @pytest.fixture
    def binarizer(self, make: Any) -> LightGBMBinarizer:
        return LightGBMBinarizer(wrapper="LGBMClassifier", classes=make.CLASSES, num_threads=1)

    @pytest.fixture
    def model_file(self, multiclass: Path, tmp_path: Path) -> LoadedFile:
        # Not a .txt name: detection reads the content.
        path = tmp_path / "model.bin"
        path.write_bytes(multiclass.read_bytes())
        return LoadedFile(path=str(path))


# ---------------------------------------------------------------------- predictions


@pytest.mark.parametrize("fixture", ["regression", "binary", "multiclass", "named"])
def test_predict_is_booster_predict(fixture: str, request: pytest.FixtureRequest,
                                    rows: np.ndarray) -> None:
    path = request.getfixturevalue(fixture)
    model = load(path)
    booster = lgb.Booster(model_file=str(path))
    expected = booster.predict(rows)
    assert type(model) is LightGBMModel
    np.testing.assert_array_equal(model.predict(rows.tolist()), expected)  # lists, with NaN
    np.testing.assert_array_equal(model.predict(rows), expected)
    assert np.isfinite(expected).all() and len(set(np.ravel(expected).tolist())) > 2


def test_a_missing_value_is_nan(regression: Path, rows: np.ndarray) -> None:
    model = load(regression)
    with_none: list[list[Any]] = rows.tolist()
    with_none[2][1] = None
    expected = lgb.Booster(model_file=str(regression)).predict(rows)
    np.testing.assert_array_equal(model.predict(np.asarray(with_none, dtype=object)), expected)
    np.testing.assert_array_equal(model.predict(with_none), expected)


def test_integer_rows_are_floats(regression: Path) -> None:
    model = load(regression)
    ints = [[1, 0, -1, 2], [0, 0, 0, 0]]
    expected = lgb.Booster(model_file=str(regression)).predict(np.asarray(ints, dtype=np.float64))
    np.testing.assert_array_equal(model.predict(np.asarray(ints)), expected)


def test_raw_score(binary: Path, rows: np.ndarray) -> None:
    booster = lgb.Booster(model_file=str(binary))
    raw = load(binary, raw_score=True).predict(rows)
    np.testing.assert_array_equal(raw, booster.predict(rows, raw_score=True))
    assert (raw < 0).any()  # margins, not probabilities


def test_classifier_wrapper_is_lgbm_classifier(make: Any, multiclass: Path, rows: np.ndarray,
                                               classifier: lgb.LGBMClassifier) -> None:
    model = load(multiclass, wrapper="LGBMClassifier", classes=make.CLASSES)
    assert isinstance(model, LightGBMClassifierModel)
    assert model.n_classes_ == 3 and model.classes_.tolist() == make.CLASSES
    np.testing.assert_array_equal(model.predict_proba(rows), classifier.predict_proba(rows))
    assert model.predict(rows).tolist() == classifier.predict(rows).tolist()
    assert len(set(classifier.predict(make.data(40, seed=2)).tolist())) == 3  # all classes
    more = make.data(40, seed=2)
    assert model.predict(more).tolist() == classifier.predict(more).tolist()
    raw = load(multiclass, wrapper="LGBMClassifier", raw_score=True)
    np.testing.assert_array_equal(raw.predict(rows), classifier.predict(rows, raw_score=True))
    np.testing.assert_array_equal(raw.predict_proba(rows),
                                  classifier.predict_proba(rows, raw_score=True))


def test_binary_classifier_wrapper(make: Any, tmp_path: Path, rows: np.ndarray) -> None:
    labels = np.where(make.target(make.data()) > 0, "yes", "no")
    classifier = lgb.LGBMClassifier(n_estimators=8, verbose=-1, n_jobs=1, min_child_samples=5)
    classifier.fit(make.data(), labels)
    path = make.save(classifier.booster_, tmp_path / "binary.txt")
    model = load(path, wrapper="LGBMClassifier", classes=["no", "yes"])
    np.testing.assert_array_equal(model.predict_proba(rows), classifier.predict_proba(rows))
    assert model.predict(rows).tolist() == classifier.predict(rows).tolist()
    default = load(path, wrapper="LGBMClassifier")
    assert default.classes_.tolist() == [0, 1]
    yes = (classifier.predict(rows) == "yes").astype(int)
    assert default.predict(rows).tolist() == yes.tolist()


def test_regressor_wrapper_is_lgbm_regressor(make: Any, tmp_path: Path, rows: np.ndarray,
                                             regressor: lgb.LGBMRegressor) -> None:
    path = make.save(regressor.booster_, tmp_path / "regressor.txt")
    model = load(path, wrapper="LGBMRegressor", num_threads=1)
    assert not hasattr(model, "predict_proba")
    np.testing.assert_array_equal(model.predict(rows), regressor.predict(rows))


# ---------------------------------------------------------------------- what core reads


def test_feature_count_and_names(make: Any, regression: Path, named: Path) -> None:
    unnamed = load(regression)
    assert unnamed.n_features_in_ == 4 and unnamed.feature_names_in_ is None
    assert load(named).feature_names_in_.tolist() == make.NAMES
    assert "objective 'regression', 4 features (age, income, height, weight)" in repr(load(named))


def test_core_analysis_finds_x_and_the_row_width(make: Any, regression: Path,
                                                   named: Path) -> None:
    interface = analyse(load(regression))
    assert [a.name for a in interface.arguments] == ["X"]
    assert interface.rows is not None and interface.rows.fixed_width is not None
    assert interface.rows.fixed_width.width == 4 and interface.columns is None
    by_name = analyse(load(named))
    assert [c.name for c in by_name.columns or ()] == make.NAMES
    classifier = analyse(load(named, wrapper="LGBMRegressor"), predict_method_name="predict")
    assert classifier.rows is not None and classifier.rows.name == "X"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1.0, 2.0, 3.0]], "expected 4 features per row (the model's), got 3"),
        ([1.0, 2.0, 3.0, 4.0], "rows of 4 features (2 dimensions), got shape [4]"),
        ([[1.0, 2.0, 3.0, 4.0], [1.0]], "expected a list of rows of 4 features each"),
        ([[1.0, "a", 3.0, 4.0]], "rows must hold numbers (null for a missing value)"),
        (np.asarray([[1.0, "a", 3.0, None]], dtype=object), "got str 'a'"),
    ],
)
def test_bad_rows_are_a_422(regression: Path, rows: Any, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        load(regression).predict(rows)
    assert caught.value.status_code == 422
    [detail] = caught.value.details
    assert detail["loc"] == ["body", "X"] and message in detail["msg"]


# ---------------------------------------------------------------------- reading


def test_path_string_and_bytearray_agree(regression: Path, rows: np.ndarray) -> None:
    expected = load(regression).predict(rows)
    raw = regression.read_bytes()
    for file in (LoadedFile(raw_data=raw, name="m.txt"), LoadedFile(raw_data=bytearray(raw)),
                 LoadedFile(raw_data=memoryview(raw))):
        model = LightGBMBinarizer().deserialize([file])
        np.testing.assert_array_equal(model.predict(rows), expected)


def test_the_model_among_several_files(regression: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("how this model was trained")
    model = LightGBMBinarizer().deserialize([LoadedFile(path=str(notes)),
                                             LoadedFile(path=str(regression))])
    assert model.name == "regression.txt"


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.97])
def test_a_truncated_file_is_one_line(regression: Path, tmp_path: Path, cut: float) -> None:
    text = regression.read_bytes()
    path = tmp_path / "model.txt"
    path.write_bytes(text[: int(len(text) * cut)])
    with pytest.raises(ModelLoadError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith("lightgbm binarizer: model.txt is not a complete LightGBM model, "
                              "truncated or damaged: no '")
    assert "\n" not in message


def test_no_cut_crashes_lightgbm(multiclass: Path) -> None:
    """LightGBM's own loader reads past the end of a cut file (a segmentation fault) or aborts
    in its parallel tree parsing: every cut is refused before it, or loads a whole model."""
    text = multiclass.read_bytes()
    loaded = 0
    for cut in range(0, len(text), 11):
        try:
            LightGBMBinarizer().deserialize([LoadedFile(raw_data=text[:cut], name="m.txt")])
            loaded += 1
        except ModelLoadError as error:
            assert "\n" not in str(error)
    assert loaded < 50  # only cuts after the trees and the parameters load


def with_line(text: bytes, key: bytes, line: bytes) -> bytes:
    """``text`` with its first line starting with ``key`` replaced by ``line``."""
    start = text.index(b"\n" + key) + 1
    return text[:start] + line + text[text.index(b"\n", start):]


@pytest.mark.parametrize(
    ("key", "line", "problem"),
    [
        (b"num_leaves=", b"num_leaves=0", "'Tree=0': num_leaves 0, num_cat 0"),
        (b"num_leaves=", b"num_leaves=x", "'Tree=0': num_leaves is not a number: 'x'"),
        (b"left_child=", b"left_child=1", "'Tree=0': left_child has 1 values, not"),
        (b"left_child=", b"left_child=1 -2 x", "'Tree=0': left_child is not a list of numbers"),
        (b"split_feature=", b"split_feature=9", "'Tree=0': split_feature has 1 values"),
        (b"leaf_value=", b"leaf_valu=1", "'Tree=0': no leaf_value"),
        (b"num_cat=", b"num_cat=0\nbroken line", "'Tree=0' has a line without '=': 'broken line'"),
        (b"tree_sizes=", b"tree_sizes=1", "tree_sizes lists 1 trees, the file holds 8"),
        (b"max_feature_idx=", b"max_feature_idx=", "max_feature_idx is not a number"),
        (b"[boosting: ", b"[boosting gbdt]", "a parameter line is not [key: value]"),
    ],
)
def test_damaged_fields_are_one_line(regression: Path, tmp_path: Path, key: bytes, line: bytes,
                                     problem: str) -> None:
    path = tmp_path / "model.txt"
    path.write_bytes(with_line(regression.read_bytes(), key, line))
    with pytest.raises(ModelLoadError) as caught:
        load(path)
    assert "model.txt is not a complete LightGBM model, truncated or damaged: " in str(caught.value)
    assert problem in str(caught.value)


def test_split_features_are_the_models(regression: Path, tmp_path: Path) -> None:
    text = regression.read_bytes()
    start = text.index(b"split_feature=")
    count = len(text[start:text.index(b"\n", start)].split())
    path = tmp_path / "model.txt"
    path.write_bytes(with_line(text, b"split_feature=", b"split_feature=" + b" 4" * count))
    with pytest.raises(ModelLoadError, match=r"a split_feature is not one of the 4 features"):
        load(path)


def test_children_that_make_no_tree(regression: Path, tmp_path: Path) -> None:
    text = regression.read_bytes()
    start = text.index(b"left_child=")
    line = text[start:text.index(b"\n", start)]
    values = line[len(b"left_child="):].split()
    swapped = b"left_child=" + b" ".join([values[0], values[0], *values[2:]])
    path = tmp_path / "model.txt"
    path.write_bytes(text.replace(line, swapped, 1))
    with pytest.raises(ModelLoadError, match=r"'Tree=0': the children do not make one tree"):
        load(path)


def test_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "model.txt"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ModelLoadError, match=r"model.txt is not a LightGBM text model .it does "
                                             r"not start with 'tree', then 'version='."):
        load(path)
    with pytest.raises(ModelLoadError, match=r"not a LightGBM text model"):
        LightGBMBinarizer().deserialize([LoadedFile(raw_data=b"\x80\x05\xff", name="m")])


def test_nothing_to_read(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"cannot read .*gone.txt: No such file"):
        load(tmp_path / "gone.txt")
    with pytest.raises(ModelLoadError, match=r"neither a path nor bytes"):
        LightGBMBinarizer().deserialize([LoadedFile(name="ghost")])
    with pytest.raises(ModelLoadError, match=r"no file"):
        LightGBMBinarizer().deserialize([])


# ---------------------------------------------------------------------- settings


def test_wrapper_must_fit_the_objective(regression: Path, binary: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"'LGBMClassifier' but regression.txt is not a "
                                             r"classifier .objective 'regression'"):
        load(regression, wrapper="LGBMClassifier")
    with pytest.raises(ModelLoadError, match=r"'LGBMRegressor' but binary.txt is a classifier"):
        load(binary, wrapper="LGBMRegressor")


def test_classes_must_match_the_model(multiclass: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"classes lists 2 labels but multiclass.txt has 3"):
        load(multiclass, wrapper="LGBMClassifier", classes=["a", "b"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"wrapper": "XGBClassifier"}, "one of 'Booster', 'LGBMClassifier', 'LGBMRegressor'"),
        ({"classes": ["a", "b"]}, "needs wrapper = 'LGBMClassifier'"),
        ({"wrapper": "LGBMClassifier", "classes": ["a"]}, "must list the class labels"),
        ({"wrapper": "LGBMClassifier", "classes": ["a", 1]}, "must list the class labels"),
        ({"wrapper": "LGBMClassifier", "classes": ["a", "a"]}, "must list the class labels"),
        ({"wrapper": "LGBMClassifier", "classes": "ab"}, "must list the class labels"),
        ({"num_threads": 0}, "num_threads must be a whole number"),
        ({"num_threads": "2"}, "num_threads must be a whole number"),
        ({"num_threads": True}, "num_threads must be a whole number"),
        ({"raw_score": "yes"}, "raw_score must be true or false"),
    ],
)
def test_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LightGBMBinarizer(**kwargs)


def test_unknown_setting_lists_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        build("binarizer", LightGBMBinarizer, {"nthread": 4}, "binarization_kwargs")
    assert "nthread" in str(caught.value)
    assert "wrapper, classes, num_threads, raw_score" in str(caught.value)


# ---------------------------------------------------------------------- detect


def test_detect_reads_the_content(regression: Path, tmp_path: Path) -> None:
    raw = regression.read_bytes()
    assert raw.startswith(b"tree\nversion=v")
    for file in (LoadedFile(path=str(regression)), LoadedFile(raw_data=raw),
                 LoadedFile(raw_data=raw, name="model.pkl")):
        score, reason = LightGBMBinarizer.detect(file)
        assert score == 0.95 and "LightGBM text model" in reason
    # the name alone says nothing: no bytes, no score
    assert LightGBMBinarizer.detect(LoadedFile(name="model.txt"))[0] == 0.0


@pytest.mark.parametrize(
    "content",
    [
        pickle.dumps({"a": 1}, protocol=5),                        # a pickle
        b"\x08\x08\x12\x07pytorch\x1a\x032.1",                     # an ONNX ModelProto
        b'{"learner":{"attributes":{},"feature_names":[]}}',       # an XGBoost JSON model
        b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner{",             # an XGBoost UBJ model
        b'{"tree": 1, "version": 2}',                              # any JSON
        b"tree\nthis is a text file about trees",
        b"PK\x03\x04",                                             # a zip (.keras)
        b"",
    ],
)
def test_detect_other_formats_score_zero(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.txt"
    path.write_bytes(content)
    assert LightGBMBinarizer.detect(LoadedFile(path=str(path)))[0] == 0.0
    assert LightGBMBinarizer.detect(LoadedFile(raw_data=content, name="model.txt"))[0] == 0.0

