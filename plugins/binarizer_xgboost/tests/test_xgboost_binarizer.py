"""The ``xgboost`` binarizer on real XGBoost JSON and UBJ model files: the contract suite, the
served model's predictions against XGBoost's own, its settings, its errors and detection."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from core.analysis import analyse
from core.components import LoadedFile
from core.errors import ConfigError, ModelLoadError, ValidationError
from core.ml import build
from core.testing import BinarizerContract

from core_binarizer_xgboost import XGBoostBinarizer, XGBoostClassifierModel, XGBoostModel

FORMATS = ["json", "ubj"]


def load(path: Path, **settings: Any) -> Any:
    return XGBoostBinarizer(**settings).deserialize([LoadedFile(path=str(path))])


def booster_predict(path: Path, rows: np.ndarray, **kwargs: Any) -> np.ndarray:
    booster = xgb.Booster(model_file=str(path))
    matrix = xgb.DMatrix(rows, feature_names=booster.feature_names)
    return booster.predict(matrix, **kwargs)


class TestXGBoostJsonContract(BinarizerContract):
    name = "xgboost"
    imported_to_load = ("xgboost",)

    @pytest.fixture
    def binarizer(self) -> XGBoostBinarizer:
        return XGBoostBinarizer()

    @pytest.fixture
    def model_file(self, regression: dict[str, Path]) -> LoadedFile:
        return LoadedFile(path=str(regression["json"]))

    @pytest.fixture
    def predict_input(self, rows: np.ndarray) -> dict[str, Any]:
        return {"X": rows.tolist()}


class TestXGBoostUbjContract(TestXGBoostJsonContract):
    @pytest.fixture
    def binarizer(self) -> XGBoostBinarizer:
        return XGBoostBinarizer(nthread=1, output_margin=True)

    @pytest.fixture
    def model_file(self, binary: dict[str, Path], tmp_path: Path) -> LoadedFile:
        path = tmp_path / "model.bin"  # no telling name: detection reads the content
        path.write_bytes(binary["ubj"].read_bytes())
        return LoadedFile(path=str(path))


class TestClassifierContract(TestXGBoostJsonContract):
    predict_method_name = "predict_proba"

    @pytest.fixture
    def binarizer(self) -> XGBoostBinarizer:
        return XGBoostBinarizer(wrapper="XGBClassifier", nthread=1)

    @pytest.fixture
    def model_file(self, classifier_files: dict[str, Path]) -> LoadedFile:
        return LoadedFile(path=str(classifier_files["ubj"]))


# ---------------------------------------------------------------------- predictions


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fixture", ["regression", "binary", "softprob", "named"])
def test_predict_is_booster_predict_on_a_dmatrix(fixture: str, fmt: str, rows: np.ndarray,
                                                 request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)[fmt]
    model = load(path)
    expected = booster_predict(path, rows)
    assert type(model) is XGBoostModel and model.estimator is None
    np.testing.assert_array_equal(model.predict(rows.tolist()), expected)
    np.testing.assert_array_equal(model.predict(rows), expected)
    assert np.isfinite(expected).all() and len(set(np.ravel(expected).tolist())) > 2


def test_json_and_ubj_agree(softprob: dict[str, Path], rows: np.ndarray) -> None:
    np.testing.assert_array_equal(load(softprob["json"]).predict(rows),
                                  load(softprob["ubj"]).predict(rows))
    assert load(softprob["json"]).predict(rows).shape == (len(rows), 3)


def test_a_missing_value_is_nan(regression: dict[str, Path], rows: np.ndarray) -> None:
    with_none: list[list[Any]] = rows.tolist()
    with_none[2][1] = None
    model = load(regression["json"])
    expected = booster_predict(regression["json"], rows)
    np.testing.assert_array_equal(model.predict(np.asarray(with_none, dtype=object)), expected)
    np.testing.assert_array_equal(model.predict(with_none), expected)


def test_float32_rows_stay_float32(regression: dict[str, Path], rows: np.ndarray) -> None:
    single = rows.astype(np.float32)
    np.testing.assert_array_equal(load(regression["ubj"]).predict(single),
                                  booster_predict(regression["ubj"], single))


def test_output_margin(binary: dict[str, Path], rows: np.ndarray) -> None:
    margins = load(binary["json"], output_margin=True).predict(rows)
    np.testing.assert_array_equal(margins,
                                  booster_predict(binary["json"], rows, output_margin=True))
    assert (margins < 0).any()


@pytest.mark.parametrize("fmt", FORMATS)
def test_classifier_wrapper_is_xgb_classifier(classifier_files: dict[str, Path], fmt: str,
                                              classifier: xgb.XGBClassifier, make: Any,
                                              rows: np.ndarray) -> None:
    model = load(classifier_files[fmt], wrapper="XGBClassifier", nthread=1)
    assert isinstance(model, XGBoostClassifierModel)
    assert type(model.estimator) is xgb.XGBClassifier
    assert model.classes_.tolist() == [0, 1, 2] and model.n_classes_ == 3
    np.testing.assert_array_equal(model.predict_proba(rows), classifier.predict_proba(rows))
    more = make.data(40, seed=2)
    assert len(set(classifier.predict(more).tolist())) == 3  # every class
    assert model.predict(more).tolist() == classifier.predict(more).tolist()


def test_classifier_wrapper_reads_a_booster_file(binary: dict[str, Path],
                                                 rows: np.ndarray) -> None:
    model = load(binary["ubj"], wrapper="XGBClassifier")
    probability = booster_predict(binary["ubj"], rows)
    np.testing.assert_allclose(model.predict_proba(rows)[:, 1], probability, rtol=1e-6)
    assert model.predict(rows).tolist() == (probability > 0.5).astype(int).tolist()


def test_regressor_wrapper_is_xgb_regressor(regressor_files: dict[str, Path],
                                            regressor: xgb.XGBRegressor,
                                            rows: np.ndarray) -> None:
    model = load(regressor_files["json"], wrapper="XGBRegressor")
    assert not hasattr(model, "predict_proba")
    np.testing.assert_array_equal(model.predict(rows), regressor.predict(rows))


def test_nthread_reaches_the_booster(regression: dict[str, Path]) -> None:
    model = load(regression["json"], nthread=1)
    config = json.loads(model.booster.save_config())
    assert config["learner"]["generic_param"]["nthread"] == "1"
    wrapped = load(regression["json"], nthread=1, wrapper="XGBRegressor")
    assert wrapped.estimator.n_jobs == 1


# ---------------------------------------------------------------------- what core reads


def test_feature_count_and_names(regression: dict[str, Path], named: dict[str, Path],
                                 make: Any) -> None:
    assert load(regression["json"]).n_features_in_ == 4
    assert load(regression["json"]).feature_names_in_ is None
    assert load(named["ubj"]).feature_names_in_.tolist() == make.NAMES
    assert "objective 'reg:squarederror', 4 features (age, income" in repr(load(named["ubj"]))


def test_core_analysis_finds_x_and_the_row_width(regression: dict[str, Path],
                                                 named: dict[str, Path], make: Any) -> None:
    interface = analyse(load(regression["json"]))
    assert [a.name for a in interface.arguments] == ["X"]
    assert interface.rows is not None and interface.rows.fixed_width is not None
    assert interface.rows.fixed_width.width == 4 and interface.columns is None
    assert [c.name for c in analyse(load(named["json"])).columns or ()] == make.NAMES


def test_core_analysis_of_the_classifier(classifier_files: dict[str, Path]) -> None:
    model = load(classifier_files["json"], wrapper="XGBClassifier")
    for method in ("predict", "predict_proba"):
        interface = analyse(model, predict_method_name=method)
        assert [a.name for a in interface.arguments] == ["X"]


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
@pytest.mark.parametrize("wrapper", ["Booster", "XGBRegressor"])
def test_bad_rows_are_a_422(regression: dict[str, Path], rows: Any, message: str,
                            wrapper: str) -> None:
    with pytest.raises(ValidationError) as caught:
        load(regression["json"], wrapper=wrapper).predict(rows)
    assert caught.value.status_code == 422
    [detail] = caught.value.details
    assert detail["loc"] == ["body", "X"] and message in detail["msg"]


# ---------------------------------------------------------------------- reading


@pytest.mark.parametrize("fmt", FORMATS)
def test_path_and_every_kind_of_bytes_agree(regression: dict[str, Path], fmt: str,
                                            rows: np.ndarray) -> None:
    expected = load(regression[fmt]).predict(rows)
    raw = regression[fmt].read_bytes()
    for file in (LoadedFile(raw_data=raw, name=f"m.{fmt}"), LoadedFile(raw_data=bytearray(raw)),
                 LoadedFile(raw_data=memoryview(raw))):
        np.testing.assert_array_equal(XGBoostBinarizer().deserialize([file]).predict(rows),
                                      expected)


def test_leading_whitespace_and_any_name(regression: dict[str, Path], tmp_path: Path,
                                         rows: np.ndarray) -> None:
    path = tmp_path / "model.txt"
    path.write_bytes(b"\n  " + regression["json"].read_bytes())
    np.testing.assert_array_equal(load(path).predict(rows),
                                  booster_predict(regression["json"], rows))


def test_the_model_among_several_files(regression: dict[str, Path], tmp_path: Path) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text('{"trained": "yesterday"}')
    model = XGBoostBinarizer().deserialize([LoadedFile(path=str(notes)),
                                            LoadedFile(path=str(regression["ubj"]))])
    assert model.name == "regression.ubj"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cut", [0.1, 0.5, 0.99])
def test_a_truncated_file_is_one_line(regression: dict[str, Path], tmp_path: Path, fmt: str,
                                      cut: float) -> None:
    content = regression[fmt].read_bytes()
    path = tmp_path / f"model.{fmt}"
    path.write_bytes(content[: int(len(content) * cut)])
    with pytest.raises(ModelLoadError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"xgboost binarizer: XGBoost cannot load model.{fmt}: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    "content",
    [pickle.dumps({"a": 1}), b"binf\x00\x00\x00\x00", b"", b"{", b"tree\nversion=v4\n"],
)
def test_not_a_model(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.json"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=r"model.json is not an XGBoost JSON or UBJ model"):
        load(path)


def test_json_that_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text('{"weights": [1, 2, 3]}')
    with pytest.raises(ModelLoadError, match=r"XGBoost cannot load model.json: "):
        load(path)


def _damage(tree: dict[str, Any], how: str) -> None:
    left, right = tree["left_children"], tree["right_children"]
    if how == "out of range":
        left[0] = len(left) + 1000
    elif how == "negative":
        right[0] = -7
    elif how == "one child":
        right[0] = -1
    elif how == "loop":
        left[0] = 0
    elif how == "feature":
        tree["split_indices"][0] = 10**6


DAMAGE = {"out of range": "names a child outside its", "negative": "names a child outside its",
          "one child": "has a node (0) with one child",
          "loop": "has a node that is the child of two, or a loop back to its root",
          "feature": "splits on a feature that is not one of the model's 4"}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_tree_is_refused_at_load(regression: dict[str, Path], tmp_path: Path,
                                           fmt: str, how: str) -> None:
    """XGBoost loads these files, then dies with SIGSEGV at the first prediction (and the
    server with it): the binarizer refuses them at load, in one line naming the tree."""
    model = json.loads(regression["json"].read_text())
    _damage(model["learner"]["gradient_booster"]["model"]["trees"][3], how)
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(model))
    path = damaged
    if fmt == "ubj":  # XGBoost takes it, and writes it back as UBJ
        path = tmp_path / "damaged.ubj"
        xgb.Booster(model_file=str(damaged)).save_model(str(path))
    with pytest.raises(ModelLoadError) as caught:
        load(path)
    assert str(caught.value).startswith(f"xgboost binarizer: damaged.{fmt} is damaged: tree 3 "
                                        f"{DAMAGE[how]}")
    assert "Save the model again" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("params", [{"tree_method": "exact", "gamma": 0.5},
                                    {"tree_method": "approx", "gamma": 1.0},
                                    {"booster": "dart"}, {"booster": "gblinear"}],
                         ids=["exact-pruned", "approx-pruned", "dart", "gblinear"])
def test_every_kind_of_booster_passes_the_tree_check(make: Any, tmp_path: Path,
                                                     params: dict[str, Any]) -> None:
    """Pruning leaves deleted nodes and reuses their numbers (a child may come before its
    parent): the check asks for a tree, not for XGBoost's usual order."""
    booster = make.train("reg:squarederror", make.target(make.data()), **params)
    path = tmp_path / "model.json"
    booster.save_model(str(path))
    rows = make.data(5, seed=3)
    np.testing.assert_array_equal(load(path).predict(X=rows), booster.predict(xgb.DMatrix(rows)))


def test_a_native_stack_trace_is_left_out(regression: dict[str, Path], tmp_path: Path) -> None:
    model = json.loads(regression["json"].read_text())
    tree = model["learner"]["gradient_booster"]["model"]["trees"][0]
    tree["left_children"] = tree["left_children"][:1]
    path = tmp_path / "short.json"
    path.write_text(json.dumps(model))
    with pytest.raises(ModelLoadError) as caught:
        load(path)
    assert str(caught.value).startswith("xgboost binarizer: XGBoost cannot load short.json: ")
    assert "Stack trace" not in str(caught.value) and "[bt]" not in str(caught.value)


def test_nothing_to_read(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"cannot read .*gone.json"):
        load(tmp_path / "gone.json")
    with pytest.raises(ModelLoadError, match=r"neither a path nor bytes"):
        XGBoostBinarizer().deserialize([LoadedFile(name="ghost")])
    with pytest.raises(ModelLoadError, match=r"no file"):
        XGBoostBinarizer().deserialize([])


# ---------------------------------------------------------------------- settings


def test_wrapper_must_fit_the_objective(regression: dict[str, Path], binary: dict[str, Path],
                                        classifier_files: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match=r"wrapper = 'XGBClassifier' does not serve "
                                             r"regression.json, whose objective is "
                                             r"'reg:squarederror'; use wrapper = 'Booster' or "
                                             r"'XGBRegressor'"):
        load(regression["json"], wrapper="XGBClassifier")
    with pytest.raises(ModelLoadError, match=r"'XGBRegressor' does not serve binary.ubj"):
        load(binary["ubj"], wrapper="XGBRegressor")
    # a classifier's file says what it is: XGBoost refuses it as a regressor
    with pytest.raises(ModelLoadError, match=r"XGBoost cannot load classifier.json: .*Expecting: "
                                             r"regressor, got: classifier"):
        load(classifier_files["json"], wrapper="XGBRegressor")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"wrapper": "LGBMClassifier"}, "one of 'Booster', 'XGBClassifier', 'XGBRegressor'"),
        ({"nthread": 0}, "nthread must be a whole number"),
        ({"nthread": "2"}, "nthread must be a whole number"),
        ({"nthread": False}, "nthread must be a whole number"),
        ({"output_margin": 1}, "output_margin must be true or false"),
    ],
)
def test_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        XGBoostBinarizer(**kwargs)


def test_unknown_setting_lists_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        build("binarizer", XGBoostBinarizer, {"num_threads": 4}, "binarization_kwargs")
    assert "num_threads" in str(caught.value)
    assert "wrapper, nthread, output_margin" in str(caught.value)


# ---------------------------------------------------------------------- detect


@pytest.mark.parametrize("fmt", FORMATS)
def test_detect_reads_the_content(regression: dict[str, Path], classifier_files: dict[str, Path],
                                  fmt: str) -> None:
    for path in (regression[fmt], classifier_files[fmt]):
        raw = path.read_bytes()
        for file in (LoadedFile(path=str(path)), LoadedFile(raw_data=raw),
                     LoadedFile(raw_data=raw, name="model.pkl")):
            score, reason = XGBoostBinarizer.detect(file)
            assert score == 0.95 and f"XGBoost {fmt.upper()} model" in reason


def test_real_files_start_as_detection_expects(regression: dict[str, Path]) -> None:
    assert regression["json"].read_bytes().startswith(b'{"learner":')
    assert regression["ubj"].read_bytes()[:2] == b"{L"


@pytest.mark.parametrize(
    "content",
    [
        pickle.dumps({"a": 1}, protocol=5),                        # a pickle
        b"\x08\x08\x12\x07pytorch\x1a\x032.1",                     # an ONNX ModelProto
        b"tree\nversion=v4\nnum_class=1\n",                        # a LightGBM text model
        b'{"weights": [1, 2, 3], "learner": "adam"}',              # any JSON
        b'[{"learner": 1}]',
        b"{L\x00\x00\x00\x00\x00\x00\x00\x07weights[",             # any UBJSON
        b"PK\x03\x04",                                             # a zip (.keras)
        b"",
    ],
)
@pytest.mark.parametrize("name", ["model.json", "model.ubj", "model.bin"])
def test_detect_other_formats_score_zero(tmp_path: Path, content: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert XGBoostBinarizer.detect(LoadedFile(path=str(path)))[0] == 0.0
    assert XGBoostBinarizer.detect(LoadedFile(raw_data=content, name=name))[0] == 0.0

