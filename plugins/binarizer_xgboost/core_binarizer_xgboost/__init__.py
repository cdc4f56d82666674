"""core-binarizer-xgboost: the ``xgboost`` binarizer, XGBoost JSON and UBJ model files.

Registered under the name ``xgboost`` through the ``core`` entry-point group. A file written
by ``save_model`` (``.json`` or ``.ubj``, from a Booster or a scikit-learn estimator) becomes
an :class:`XGBoostModel` whose ``predict(X)`` answers what ``Booster.predict`` answers on a
``DMatrix`` of the same rows; with ``wrapper = "XGBClassifier"`` (or ``"XGBRegressor"``) the
file is loaded into that estimator (``load_model``) and served by its ``predict`` (and
``predict_proba``)::

    binarization_type = "xgboost"
    binarization_kwargs = { nthread = 2, wrapper = "XGBClassifier" }

Reading an XGBoost model file runs no code from it, so ``binarization_type = "auto"`` loads it.
"""

from __future__ import annotations

from core.hookspecs import Register, hookimpl

from core_binarizer_xgboost.binarizer import WRAPPERS, XGBoostBinarizer
from core_binarizer_xgboost.model import XGBoostClassifierModel, XGBoostModel

__version__ = "0.1.0"

__all__ = [
    "WRAPPERS",
    "XGBoostBinarizer",
    "XGBoostClassifierModel",
    "XGBoostModel",
    "__version__",
    "register_binarizers",
]


@hookimpl
def register_binarizers(register: Register) -> None:
    register("xgboost", XGBoostBinarizer)
