"""core-binarizer-lightgbm: the ``lightgbm`` binarizer, LightGBM text model files.

Registered under the name ``lightgbm`` through the ``core`` entry-point group. A file written
by ``Booster.save_model`` (or the same text as bytes) becomes a :class:`LightGBMModel` whose
``predict(X)`` answers what ``Booster.predict`` answers for the same rows; with ``wrapper =
"LGBMClassifier"`` a :class:`LightGBMClassifierModel` with scikit-learn's ``predict`` (class
labels) and ``predict_proba``::

    binarization_type = "lightgbm"
    binarization_kwargs = { num_threads = 2, wrapper = "LGBMClassifier" }

Reading a LightGBM model file runs no code from it, so ``binarization_type = "auto"`` loads it.
"""

from __future__ import annotations

from core.hookspecs import Register, hookimpl

from core_binarizer_lightgbm.binarizer import WRAPPERS, LightGBMBinarizer
from core_binarizer_lightgbm.model import LightGBMClassifierModel, LightGBMModel

__version__ = "0.1.0"

__all__ = [
    "WRAPPERS",
    "LightGBMBinarizer",
    "LightGBMClassifierModel",
    "LightGBMModel",
    "__version__",
    "register_binarizers",
]


@hookimpl
def register_binarizers(register: Register) -> None:
    register("lightgbm", LightGBMBinarizer)
