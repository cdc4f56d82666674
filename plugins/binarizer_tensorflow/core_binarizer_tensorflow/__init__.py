"""core-binarizer-tensorflow: the ``tensorflow`` binarizer (Keras ``.keras`` and ``.h5``
files, SavedModel folders and zips of them) and the ``tf_tensor`` transformer.

Registered through the ``core`` entry-point group. Importing this package does not import
TensorFlow (it takes seconds): the binarizer imports it when it loads a model, and the
transformer is registered by path, imported when a config names it::

    binarization_type = "tensorflow"      # or "auto"
    binarization_kwargs = { intra_op_parallelism_threads = 2 }
    data_transformer_for_predict = "tf_tensor"   # optional: rows as a tf.Tensor
"""

from __future__ import annotations

from core.hookspecs import Register, hookimpl

from core_binarizer_tensorflow.binarizer import TensorFlowBinarizer

__version__ = "0.1.0"

__all__ = ["TensorFlowBinarizer", "__version__", "register_binarizers", "register_transformers"]


@hookimpl
def register_binarizers(register: Register) -> None:
    register("tensorflow", TensorFlowBinarizer)


@hookimpl
def register_transformers(register: Register) -> None:
    # by path: TensorFlow is imported when a config names the transformer
    register("tf_tensor", "core_binarizer_tensorflow.transformer:TFTensorTransformer")
