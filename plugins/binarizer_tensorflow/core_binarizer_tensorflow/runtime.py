"""TensorFlow, imported with the plugin's settings, and its process-wide ones: the thread
pools (``tf.config.threading``). The plugin's modules take ``tf`` from here.

TensorFlow reads them once, when its runtime starts (the first operation, the first model
loaded). The binarizer sets them before it loads anything; asking for other values once the
runtime runs is a :class:`~core.errors.ConfigError` rather than a setting silently ignored.
"""

from __future__ import annotations

import os

# TensorFlow's C++ start-up notes (oneDNN, CPU instructions) are INFO lines on stderr; a server
# keeps its warnings and errors only. TF_CPP_MIN_LOG_LEVEL set by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import tensorflow as tf
from core.errors import ConfigError

__all__ = ["configure_threads", "tf"]


def configure_threads(intra: int | None, inter: int | None) -> None:
    """Set the intra-op and inter-op thread counts (``None``: leave TensorFlow's choice)."""
    threading = tf.config.threading
    wanted = {
        "intra_op_parallelism_threads": (intra, threading.get_intra_op_parallelism_threads,
                                         threading.set_intra_op_parallelism_threads),
        "inter_op_parallelism_threads": (inter, threading.get_inter_op_parallelism_threads,
                                         threading.set_inter_op_parallelism_threads),
    }
    for key, (value, get, set_) in wanted.items():
        if value is None or get() == value:
            continue
        try:
            set_(value)
        except RuntimeError:
            raise ConfigError(
                f"tensorflow binarizer: binarization_kwargs.{key} = {value} cannot take effect: "
                f"TensorFlow already runs in this process with {get()} (0: its default), and "
                f"reads its thread settings once, at start-up; start a new process"
            ) from None
