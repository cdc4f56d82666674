"""``LightGBMModel``: an ``lgb.Booster`` with a ``predict(X)`` that core can serve.

core's model analysis finds ``predict(self, X)``: ``X`` is the rows argument, handed over by
the ``numpy`` transformer as an array (of ``dtype_for_predict`` when it is set). The model
says how wide a row is (``n_features_in_``, the booster's feature count) and, when the
booster was trained with feature names of its own, what they are (``feature_names_in_``), so
core checks the rows of ``POST /predict`` before the model sees them and accepts dict rows by
feature name. ``predict`` checks them again (for callers that skip core's validation: the V2
protocol, Python code): rows that are not a 2-D array of numbers of the model's width are a
:class:`core.errors.ValidationError` (422) that names what was expected and what came.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from core.errors import ValidationError

#: The names LightGBM gives the features of data that had none: ``Column_0``, ``Column_1``...
DEFAULT_FEATURE_NAME = "Column_{}"
#: The objectives of LightGBM's classifiers (and their aliases, as LightGBM normalises them).
CLASSIFIER_OBJECTIVES = ("binary", "multiclass", "multiclassova")


def _problem(msg: str, kind: str) -> ValidationError:
    return ValidationError([{"loc": ["body", "X"], "msg": msg, "type": kind}])


def as_rows(X: Any, width: int) -> np.ndarray:
    """``X`` as a 2-D float array of ``width`` columns: float arrays as they are (float32 from
    ``dtype_for_predict = "float32"`` stays float32), integers, booleans and ``None`` (a
    missing value, NaN) converted to float64. Anything else is a 422 naming the problem."""
    if isinstance(X, np.ndarray):
        array = X
    else:
        try:
            array = np.asarray(X)
        except (TypeError, ValueError):  # ragged rows
            raise _problem(f"expected a list of rows of {width} features each, got rows of "
                           f"different lengths", "wrong_shape") from None
    if array.dtype.kind != "f":
        if array.dtype.kind == "O":
            bad = next((v for v in array.ravel()
                        if v is not None and not isinstance(v, (int, float, np.number))), None)
            if bad is not None:
                shown = repr(bad)[:60]
                raise _problem(f"rows must hold numbers (null for a missing value), got "
                               f"{type(bad).__name__} {shown}", "type_error")
        elif array.dtype.kind not in "biu":
            raise _problem(f"rows must hold numbers (null for a missing value), got an array of "
                           f"{array.dtype}", "type_error")
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError, OverflowError) as error:
            raise _problem(f"rows must hold numbers: {error}", "type_error") from None
    if array.ndim != 2:
        raise _problem(f"expected a list of rows of {width} features (2 dimensions), got shape "
                       f"{list(array.shape)}", "wrong_shape")
    if array.shape[1] != width:
        raise _problem(f"expected {width} features per row (the model's), got {array.shape[1]}",
                       "wrong_length")
    return array


def _feature_names(booster: Any) -> np.ndarray | None:
    """The booster's feature names, or None when LightGBM made them up (``Column_0``...)."""
    names = list(booster.feature_name())
    if not names or names == [DEFAULT_FEATURE_NAME.format(i) for i in range(len(names))]:
        return None
    return np.asarray(names, dtype=object)


class LightGBMModel:
    """An ``lgb.Booster`` served through ``predict(X)``: ``Booster.predict`` on the rows.

    :ivar booster: the ``lightgbm.Booster``.
    :ivar n_features_in_: the features in a row (``booster.num_feature()``).
    :ivar feature_names_in_: the features' names when the booster was trained with names of
        its own (core then also takes dict rows by name); ``None`` for ``Column_0``...
    :ivar objective: the booster's objective (``"regression"``, ``"binary"``...).
    :param num_threads: threads for one prediction (LightGBM's ``num_threads``); None: the
        booster's own setting (OpenMP's default, one per core, unless it was saved with one).
    :param raw_score: predict raw scores (before the sigmoid or softmax).
    :param name: the file's name, for ``repr``.
    """

    def __init__(self, booster: Any, *, num_threads: int | None = None, raw_score: bool = False,
                 name: str = "") -> None:
        self.booster = booster
        self.n_features_in_ = int(booster.num_feature())
        self.feature_names_in_ = _feature_names(booster)
        self.objective = str(booster.params.get("objective", ""))
        self.raw_score = raw_score
        self.name = name
        self._params: dict[str, Any] = {} if num_threads is None else {"num_threads": num_threads}

    def _booster_predict(self, X: Any) -> Any:
        rows = as_rows(X, self.n_features_in_)
        return self.booster.predict(rows, raw_score=self.raw_score, **self._params)

    def predict(self, X: Any) -> Any:
        """``Booster.predict`` of the rows: one value per row, or one per class and row for a
        multiclass model."""
        return self._booster_predict(X)

    def __repr__(self) -> str:
        names = "" if self.feature_names_in_ is None else f" ({', '.join(self.feature_names_in_)})"
        return (f"{type(self).__name__}({self.name or 'booster'}: objective {self.objective!r}, "
                f"{self.n_features_in_} features{names})")


class LightGBMClassifierModel(LightGBMModel):
    """A classifier's booster served as ``lightgbm.LGBMClassifier`` serves it:
    ``predict_proba`` gives one probability per class (two columns for a binary model),
    ``predict`` the class of the highest probability, from ``classes_``.

    :param classes: the class labels, in the order of the booster's classes (LGBMClassifier's
        ``classes_``: its training labels, sorted); None: ``0 .. n_classes - 1``.
    """

    def __init__(self, booster: Any, *, classes: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(booster, **kwargs)
        count = int(booster.num_model_per_iteration())
        self.n_classes_ = 2 if count == 1 else count
        self.classes_ = np.asarray(classes) if classes is not None else np.arange(self.n_classes_)

    def predict_proba(self, X: Any) -> Any:
        """The probability of each class for each row (raw scores with ``raw_score``, as
        LGBMClassifier gives them)."""
        result = self._booster_predict(X)
        if self.raw_score or result.ndim != 1:
            return result
        return np.vstack((1.0 - result, result)).transpose()

    def predict(self, X: Any) -> Any:
        """The class label of each row (raw scores with ``raw_score``, as LGBMClassifier)."""
        result = self.predict_proba(X)
        if self.raw_score:
            return result
        return self.classes_[np.argmax(result, axis=1)]
