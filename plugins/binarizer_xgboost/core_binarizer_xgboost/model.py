"""``XGBoostModel``: an ``xgboost.Booster`` (or a scikit-learn estimator holding one) with a
``predict(X)`` that core can serve.

``Booster.predict`` takes a ``DMatrix``, not rows: core's model analysis would find its
argument ``data`` and hand it a numpy array. So the model is wrapped: ``predict(self, X)``
takes the rows (the ``numpy`` transformer's array, of ``dtype_for_predict`` when it is set),
builds the ``DMatrix`` with the booster's feature names and types, and predicts. The model
says how wide a row is (``n_features_in_``) and, when the booster has feature names, what
they are (``feature_names_in_``), so core checks the rows of ``POST /predict`` before the model
sees them and accepts dict rows by feature name. ``predict`` checks them again (for callers
that skip core's validation: the V2 protocol, Python code): rows that are not a 2-D array of
numbers of the model's width are a :class:`core.errors.ValidationError` (422) that names what
was expected and what came.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from core.errors import ValidationError

if TYPE_CHECKING:
    import xgboost as xgb


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


class XGBoostModel:
    """An XGBoost model served through ``predict(X)``.

    Without an estimator, ``predict`` is ``Booster.predict(DMatrix(rows))``; with one
    (``XGBClassifier``, ``XGBRegressor``), the estimator's ``predict(rows)``.

    :ivar booster: the ``xgboost.Booster``.
    :ivar estimator: the scikit-learn estimator holding it, or ``None``.
    :ivar n_features_in_: the features in a row (``booster.num_features()``).
    :ivar feature_names_in_: the booster's feature names, when it has them (core then also
        takes dict rows by name); ``None`` otherwise.
    :ivar objective: the booster's objective (``"reg:squarederror"``, ``"binary:logistic"``...).
    :param output_margin: predict untransformed margins (before the sigmoid or softmax).
    :param nthread: threads for building the ``DMatrix`` (the booster has its own setting).
    :param name: the file's name, for ``repr``.
    """

    def __init__(self, booster: xgb.Booster, *, estimator: Any = None, objective: str = "",
                 output_margin: bool = False, nthread: int | None = None,
                 name: str = "") -> None:
        import xgboost  # here, not at import: see the binarizer

        self._dmatrix = xgboost.DMatrix
        self.booster = booster
        self.estimator = estimator
        self.n_features_in_ = int(booster.num_features())
        names = booster.feature_names
        self.feature_names_in_ = np.asarray(names, dtype=object) if names else None
        self.objective = objective
        self.output_margin = output_margin
        self.nthread = nthread
        self.name = name

    def predict(self, X: Any) -> Any:
        """``Booster.predict`` on a ``DMatrix`` of the rows (the estimator's ``predict`` for
        a wrapper): one value per row, or one per class and row for ``multi:softprob``."""
        rows = as_rows(X, self.n_features_in_)
        if self.estimator is not None:
            # core put the rows in the model's feature order already (dict rows by name)
            return self.estimator.predict(rows, output_margin=self.output_margin,
                                          validate_features=False)
        matrix = self._dmatrix(rows, feature_names=self.booster.feature_names,
                             feature_types=self.booster.feature_types, nthread=self.nthread)
        return self.booster.predict(matrix, output_margin=self.output_margin)

    def __repr__(self) -> str:
        names = "" if self.feature_names_in_ is None else f" ({', '.join(self.feature_names_in_)})"
        kind = type(self.estimator).__name__ if self.estimator is not None else "Booster"
        return (f"{type(self).__name__}({self.name or kind}: {kind}, objective "
                f"{self.objective!r}, {self.n_features_in_} features{names})")


class XGBoostClassifierModel(XGBoostModel):
    """An ``XGBClassifier`` served: ``predict`` gives class labels, ``predict_proba`` one
    probability per class (two columns for a binary model), as the estimator does.

    :ivar classes_: the estimator's classes (XGBoost's labels are ``0 .. n_classes - 1``).
    """

    def __init__(self, booster: xgb.Booster, *, estimator: Any, **kwargs: Any) -> None:
        super().__init__(booster, estimator=estimator, **kwargs)
        self.classes_ = np.asarray(estimator.classes_)
        self.n_classes_ = int(estimator.n_classes_)

    def predict_proba(self, X: Any) -> Any:
        """The probability of each class for each row (``XGBClassifier.predict_proba``)."""
        rows = as_rows(X, self.n_features_in_)
        return self.estimator.predict_proba(rows, validate_features=False)
