"""``XGBoostBinarizer``: load an XGBoost JSON or UBJ model file (``save_model``)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import attrs
from core.components import Binarizer, LoadedFile
from core.errors import ConfigError, ModelLoadError

from core_binarizer_xgboost.model import XGBoostClassifierModel, XGBoostModel

#: What ``wrapper`` may name, and the objectives each serves (by prefix); ``None``: any.
WRAPPERS: dict[str, tuple[str, ...] | None] = {
    "Booster": None,
    "XGBClassifier": ("binary:", "multi:"),
    "XGBRegressor": ("reg:", "count:", "survival:"),
}
CONTENT_SCORE = 0.95
EXTENSION_SCORE = 0.9
#: The first key of every model XGBoost saves (its keys are written sorted: learner, version).
_LEARNER = b"learner"
#: JSON: ``{"learner"`` after optional whitespace.
_JSON_HEADER = re.compile(rb'\s*\{\s*"learner"')
#: UBJSON's integer type markers and their sizes, for the length of the first key.
_UBJ_LENGTHS = {ord("i"): 1, ord("U"): 1, ord("I"): 2, ord("l"): 4, ord("L"): 8}
_SPACE = b" \t\r\n"


def _check_wrapper(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in WRAPPERS:
        raise ConfigError(
            f"xgboost binarizer: binarization_kwargs.wrapper must be one of "
            f"{', '.join(map(repr, WRAPPERS))}, got {value!r}"
        )


def _check_threads(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(
            f"xgboost binarizer: binarization_kwargs.nthread must be a whole number of threads, "
            f"1 or more (leave it out for XGBoost's default), got {value!r}"
        )


def _check_bool(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(
            f"xgboost binarizer: binarization_kwargs.{attribute.name} must be true or false, "
            f"got {value!r}"
        )


def _ubj_first_key(head: bytes) -> bytes | None:
    """The first key of a UBJSON object (``{`` then a length-prefixed string), or None."""
    if len(head) < 3 or head[0] != ord("{") or head[1] not in _UBJ_LENGTHS:
        return None
    size = _UBJ_LENGTHS[head[1]]
    if len(head) < 2 + size:
        return None
    length = int.from_bytes(head[2:2 + size], "big", signed=True)
    if not 0 < length <= 64:
        return None
    return head[2 + size:2 + size + length]


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    # XGBoost prefixes its messages with the C++ source position and may end them with its
    # native stack trace: keep the message.
    return re.sub(r"^\[[\d:]+\] \S+: ", "", text).split(" Stack trace:")[0].rstrip(" :")


def check_trees(booster: Any, name: str) -> None:
    """Refuse a model whose trees would send a prediction out of its arrays.

    XGBoost loads a file whose tree arrays were damaged (a child index out of range, a node
    with one child, a loop), then reads past them at the first prediction: the process dies
    with SIGSEGV, and with it the server. A tree is safe to walk when each node's two children
    are both -1 (a leaf) or both nodes of the tree, no node is the child of two, and the root
    is nobody's: every walk from the root then ends at a leaf; and each split reads a feature
    the model has (another index reads outside the row). Checked on what XGBoost holds
    (its JSON, whatever the file's format), with numpy, once at load.

    :raises ModelLoadError: naming the tree and what is wrong with it.
    """
    import numpy as np

    learner = json.loads(booster.save_raw("json"))["learner"]
    features = int(learner["learner_model_param"]["num_feature"])
    booster_kind = learner["gradient_booster"]
    if booster_kind.get("name") == "dart":
        booster_kind = booster_kind["gbtree"]
    trees = booster_kind.get("model", {}).get("trees", [])  # gblinear has none
    for number, tree in enumerate(trees):
        problem = _tree_problem(np.asarray(tree.get("left_children", []), dtype=np.int64),
                                np.asarray(tree.get("right_children", []), dtype=np.int64),
                                np.asarray(tree.get("split_indices", []), dtype=np.int64),
                                int(tree.get("tree_param", {}).get("num_nodes", -1)), features)
        if problem is not None:
            raise ModelLoadError(
                f"xgboost binarizer: {name} is damaged: tree {number} {problem}; XGBoost would "
                f"crash the server predicting with it. Save the model again from the training "
                f"code (save_model)"
            )


def _tree_problem(left: Any, right: Any, splits: Any, num_nodes: int, features: int) -> str | None:
    """What makes the tree with these arrays unsafe to walk, or None."""
    import numpy as np

    size = len(left)
    if size == 0 or len(right) != size or len(splits) != size or num_nodes != size:
        return (f"has {size} left and {len(right)} right children and {len(splits)} split "
                f"features for {num_nodes} nodes")
    leaf_left, leaf_right = left == -1, right == -1
    if (leaf_left != leaf_right).any():
        node = int(np.argmax(leaf_left != leaf_right))
        return f"has a node ({node}) with one child"
    children = np.concatenate([left[~leaf_left], right[~leaf_right]])
    if children.size and (children.min() < 0 or children.max() >= size):
        return f"names a child outside its {size} nodes"
    parents = np.bincount(children, minlength=size)
    if parents[0] or (parents > 1).any():
        return "has a node that is the child of two, or a loop back to its root"
    used = splits[~leaf_left]
    if used.size and (used.min() < 0 or used.max() >= features):
        return f"splits on a feature that is not one of the model's {features}"
    return None


@attrs.define(kw_only=True)
class XGBoostBinarizer(Binarizer):
    """An XGBoost model saved as JSON or UBJ (``Booster.save_model``, ``XGBModel.save_model``),
    returned as an :class:`XGBoostModel` (an :class:`XGBoostClassifierModel` for
    ``XGBClassifier``).

    The bytes are read (from the path, or ``raw_data``) and loaded from memory: XGBoost tells
    JSON from UBJ by the content, whatever the file's name.

    :param wrapper: ``"Booster"`` (``predict`` is ``Booster.predict`` on a ``DMatrix`` of the
        rows), ``"XGBClassifier"`` or ``"XGBRegressor"`` (the estimator's ``load_model``, then
        its ``predict``, and ``predict_proba`` for a classifier; needs scikit-learn).
    :param nthread: threads used by one prediction; unset: XGBoost's default (all cores).
    :param output_margin: predict untransformed margins instead of probabilities.
    """

    wrapper: str = attrs.field(default="Booster", validator=_check_wrapper)
    nthread: int | None = attrs.field(default=None, validator=_check_threads)
    output_margin: bool = attrs.field(default=False, validator=_check_bool)

    @classmethod
    def detect(cls, file: LoadedFile) -> tuple[float, str]:
        head = file.head(64)
        if head and _JSON_HEADER.match(head):
            return CONTENT_SCORE, 'the file starts like an XGBoost JSON model ({"learner")'
        if head and _ubj_first_key(head) == _LEARNER:
            return CONTENT_SCORE, "the file starts like an XGBoost UBJ model ({ then learner)"
        if file.has_suffix(".ubj") and head is None:
            return EXTENSION_SCORE, "the file name ends with .ubj"
        if not head:
            return 0.0, "no bytes to look at (an XGBoost model is recognised by its content)"
        return 0.0, 'does not start like an XGBoost JSON or UBJ model ({"learner")'

    def deserialize(self, files: list[LoadedFile]) -> XGBoostModel:
        if not files:
            raise ModelLoadError("xgboost binarizer: the storage found no file")
        file = next((f for f in files if self.detect(f)[0] > 0), files[0])
        name = file.display_name
        buffer = self._read(file, name)
        # imported here, not at import: a server serving another format never loads it
        import xgboost as xgb
        from xgboost.core import XGBoostError

        estimator = None
        try:
            if self.wrapper == "Booster":
                params = {} if self.nthread is None else {"nthread": self.nthread}
                booster = xgb.Booster(params, model_file=buffer)
            else:
                estimator = self._estimator()
                estimator.load_model(buffer)
                booster = estimator.get_booster()
            objective = str(json.loads(booster.save_config())["learner"]["objective"]["name"])
        except (XGBoostError, TypeError, ValueError, KeyError) as error:
            raise ModelLoadError(
                f"xgboost binarizer: XGBoost cannot load {name}: {_one_line(error)}"
            ) from error
        check_trees(booster, name)
        allowed = WRAPPERS[self.wrapper]
        if allowed is not None and not objective.startswith(allowed):
            fits = [w for w, prefixes in WRAPPERS.items()
                    if prefixes is None or objective.startswith(prefixes)]
            raise ModelLoadError(
                f"xgboost binarizer: wrapper = {self.wrapper!r} does not serve {name}, whose "
                f"objective is {objective!r}; use wrapper = {' or '.join(map(repr, fits))}"
            )
        settings: dict[str, Any] = {"objective": objective, "name": name,
                                    "output_margin": self.output_margin, "nthread": self.nthread}
        if self.wrapper == "XGBClassifier":
            return XGBoostClassifierModel(booster, estimator=estimator, **settings)
        return XGBoostModel(booster, estimator=estimator, **settings)

    def _estimator(self) -> Any:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise ConfigError(
                f"xgboost binarizer: wrapper = {self.wrapper!r} needs scikit-learn: "
                f"pip install 'core-binarizer-xgboost[sklearn]'"
            ) from None
        import xgboost as xgb

        cls = xgb.XGBClassifier if self.wrapper == "XGBClassifier" else xgb.XGBRegressor
        return cls(n_jobs=self.nthread)

    @staticmethod
    def _read(file: LoadedFile, name: str) -> bytearray:
        """The file's bytes, as the writable buffer XGBoost loads from, without leading
        whitespace (XGBoost wants ``{`` first)."""
        buffer: bytearray
        if file.raw_data is not None:
            raw = file.raw_data
            buffer = raw if isinstance(raw, bytearray) else bytearray(raw)
        elif file.path is not None:
            try:
                with open(file.path, "rb") as handle:
                    buffer = bytearray(os.fstat(handle.fileno()).st_size)
                    handle.readinto(buffer)
            except OSError as error:
                raise ModelLoadError(
                    f"xgboost binarizer: cannot read {file.path}: {error.strerror or error}"
                ) from None
        else:
            raise ModelLoadError(f"xgboost binarizer: {name} has neither a path nor bytes")
        start = 0
        while start < len(buffer) and buffer[start] in _SPACE:
            start += 1
        if len(buffer) - start < 2 or buffer[start] != ord("{"):
            raise ModelLoadError(
                f"xgboost binarizer: {name} is not an XGBoost JSON or UBJ model (they start "
                f"with {{); a model in XGBoost's old binary format has to be saved again as "
                f".json or .ubj by an XGBoost that reads it"
            )
        return buffer[start:] if start else buffer
