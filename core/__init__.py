"""core: turn a trained model into a production HTTP service.

The public surface: :class:`UP` and :class:`Config` (the seeds' life cycle), the component
contracts plugins implement (:class:`Storage`, :class:`Binarizer`, :class:`Transformer`,
:class:`Architecture`, :class:`ResultStore`, :class:`LoadedFile`), the hook marker :data:`hookimpl`, and
:class:`Tensor` and :class:`Outputs` for declaring a model's inputs and outputs (see
"Describing a model's tensors" in docs/plugins.md).
"""

from core import constants  # pymlup's mlup.constants: core.constants.X with no import of its own
from core.analysis import Argument, Outputs, Tensor
from core.components import Architecture, Binarizer, LoadedFile, ResultStore, Storage, Transformer
from core.config import Config
from core.hookspecs import hookimpl
from core.pymlup import install_module_paths
from core.up import UP

install_module_paths()  # pymlup's mlup.ml.empty: from core.ml.empty import EmptyModel

__version__ = "0.1.0"

__all__ = [
    "UP",
    "Architecture",
    "Argument",
    "Binarizer",
    "Config",
    "LoadedFile",
    "Outputs",
    "ResultStore",
    "Storage",
    "Tensor",
    "Transformer",
    "__version__",
    "constants",
    "hookimpl",
]
