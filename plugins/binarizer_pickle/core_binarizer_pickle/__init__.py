"""core-binarizer-pickle: the ``pickle`` binarizer (pickle, cloudpickle and joblib files).

.. warning::

   Unpickling runs arbitrary code. Only load files you trust, and pin them with
   ``binarization_kwargs.sha256`` so that a changed file is refused unread::

       binarization_type = "pickle"
       binarization_kwargs = { sha256 = "<sha256sum of model.pkl>" }

Registered under the name ``pickle`` through the ``core`` entry-point group.
"""

from __future__ import annotations

from core.hookspecs import Register, hookimpl

from core_binarizer_pickle.binarizer import PICKLE_EXTENSIONS, PickleBinarizer, file_sha256

__version__ = "0.1.0"

__all__ = [
    "PICKLE_EXTENSIONS",
    "PickleBinarizer",
    "__version__",
    "file_sha256",
    "register_binarizers",
]


@hookimpl
def register_binarizers(register: Register) -> None:
    register("pickle", PickleBinarizer)
