"""``LightGBMBinarizer``: build an ``lgb.Booster`` from a LightGBM text model file or string."""

from __future__ import annotations

import re
from typing import Any

import attrs
from core.components import Binarizer, LoadedFile
from core.errors import ConfigError, ModelLoadError

from core_binarizer_lightgbm.model import (
    CLASSIFIER_OBJECTIVES,
    LightGBMClassifierModel,
    LightGBMModel,
)
from core_binarizer_lightgbm.text import DamagedModel, prepare

#: What ``wrapper`` may name: the served model's class for each.
WRAPPERS: dict[str, type[LightGBMModel]] = {
    "Booster": LightGBMModel,
    "LGBMClassifier": LightGBMClassifierModel,
    "LGBMRegressor": LightGBMModel,
}
CONTENT_SCORE = 0.95
#: How every text model LightGBM writes starts (``Booster.save_model``, ``model_to_string``).
_HEADER = re.compile(rb"\s*tree\r?\nversion=v?\d")


def _check_wrapper(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in WRAPPERS:
        raise ConfigError(
            f"lightgbm binarizer: binarization_kwargs.wrapper must be one of "
            f"{', '.join(map(repr, WRAPPERS))}, got {value!r}"
        )


def _check_threads(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(
            f"lightgbm binarizer: binarization_kwargs.num_threads must be a whole number of "
            f"threads, 1 or more (leave it out for LightGBM's default), got {value!r}"
        )


def _check_bool(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(
            f"lightgbm binarizer: binarization_kwargs.{attribute.name} must be true or false, "
            f"got {value!r}"
        )


def _check_classes(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if (not isinstance(value, list) or len(value) < 2
            or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in value)
            or len({type(c) for c in value}) != 1 or len(set(value)) != len(value)):
        raise ConfigError(
            f"lightgbm binarizer: binarization_kwargs.classes must list the class labels, all "
            f"strings or all integers, each once (LGBMClassifier's classes_), got {value!r}"
        )
    if instance.wrapper != "LGBMClassifier":
        raise ConfigError(
            "lightgbm binarizer: binarization_kwargs.classes names the labels of a classifier; "
            "it needs wrapper = 'LGBMClassifier'"
        )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


@attrs.define(kw_only=True)
class LightGBMBinarizer(Binarizer):
    """A LightGBM text model (``Booster.save_model``, ``Booster.model_to_string``), returned
    as a :class:`LightGBMModel` (or a :class:`LightGBMClassifierModel`).

    From a path LightGBM reads the file itself; from ``raw_data`` the bytes are decoded as
    UTF-8 and read as a model string.

    :param wrapper: ``"Booster"`` (``predict`` is ``Booster.predict``), ``"LGBMClassifier"``
        (``predict`` gives class labels, ``predict_proba`` class probabilities, as the
        scikit-learn wrapper does) or ``"LGBMRegressor"`` (``predict``, checked to be a
        regression model).
    :param classes: with ``"LGBMClassifier"``, the class labels in the booster's order (the
        classifier's ``classes_``); default ``0 .. n_classes - 1``.
    :param num_threads: threads used by one prediction; unset: LightGBM's default.
    :param raw_score: predict raw scores instead of transformed ones (probabilities).
    """

    wrapper: str = attrs.field(default="Booster", validator=_check_wrapper)
    classes: list[Any] | None = attrs.field(default=None, validator=_check_classes)
    num_threads: int | None = attrs.field(default=None, validator=_check_threads)
    raw_score: bool = attrs.field(default=False, validator=_check_bool)

    @classmethod
    def detect(cls, file: LoadedFile) -> tuple[float, str]:
        head = file.head(64)
        if not head:
            return 0.0, "no bytes to look at (a LightGBM model is recognised by its content)"
        if _HEADER.match(head):
            return CONTENT_SCORE, "the file starts like a LightGBM text model (tree, version=)"
        return 0.0, "does not start like a LightGBM text model (tree, version=)"

    def deserialize(self, files: list[LoadedFile]) -> LightGBMModel:
        if not files:
            raise ModelLoadError("lightgbm binarizer: the storage found no file")
        file = next((f for f in files if _HEADER.match(f.head(64) or b"")), files[0])
        name = file.display_name
        booster = self._booster(file, name)
        objective = str(booster.params.get("objective", ""))
        is_classifier = objective.split(" ")[0] in CLASSIFIER_OBJECTIVES
        if self.wrapper == "LGBMClassifier" and not is_classifier:
            raise ModelLoadError(
                f"lightgbm binarizer: wrapper = 'LGBMClassifier' but {name} is not a classifier "
                f"(objective {objective!r}); use wrapper = 'Booster' or 'LGBMRegressor'"
            )
        if self.wrapper == "LGBMRegressor" and is_classifier:
            raise ModelLoadError(
                f"lightgbm binarizer: wrapper = 'LGBMRegressor' but {name} is a classifier "
                f"(objective {objective!r}); use wrapper = 'LGBMClassifier' or 'Booster'"
            )
        settings: dict[str, Any] = {"num_threads": self.num_threads, "raw_score": self.raw_score,
                                    "name": name}
        if self.wrapper != "LGBMClassifier":
            return WRAPPERS[self.wrapper](booster, **settings)
        model = LightGBMClassifierModel(booster, classes=self.classes, **settings)
        if self.classes is not None and len(self.classes) != model.n_classes_:
            raise ModelLoadError(
                f"lightgbm binarizer: binarization_kwargs.classes lists {len(self.classes)} "
                f"labels but {name} has {model.n_classes_} classes"
            )
        return model

    @staticmethod
    def _booster(file: LoadedFile, name: str) -> Any:
        if file.raw_data is not None:
            data = bytes(file.raw_data)
        elif file.path is not None:
            try:
                with open(file.path, "rb") as handle:
                    data = handle.read()
            except OSError as error:
                raise ModelLoadError(
                    f"lightgbm binarizer: cannot read {file.path}: {error.strerror or error}"
                ) from None
        else:
            raise ModelLoadError(f"lightgbm binarizer: {name} has neither a path nor bytes")
        if not _HEADER.match(data[:64]):
            raise ModelLoadError(
                f"lightgbm binarizer: {name} is not a LightGBM text model (it does not start "
                f"with 'tree', then 'version=')"
            )
        try:
            text = prepare(data).decode("utf-8")
        except DamagedModel as error:
            raise ModelLoadError(
                f"lightgbm binarizer: {name} is not a complete LightGBM model, truncated or "
                f"damaged: {error}"
            ) from None
        except UnicodeDecodeError as error:
            raise ModelLoadError(
                f"lightgbm binarizer: {name} is not a LightGBM text model: {error}"
            ) from None
        # imported here, not at import: a server serving another format never loads it
        import lightgbm as lgb

        try:
            return lgb.Booster(model_str=text)
        except Exception as error:  # LightGBMError, or the pandas_categorical line's JSON
            raise ModelLoadError(
                f"lightgbm binarizer: LightGBM cannot load {name}: {_one_line(error)}"
            ) from error
