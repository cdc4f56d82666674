"""How the plugin words errors: one line, whatever TensorFlow or Keras raised."""

from __future__ import annotations


def one_line(error: BaseException) -> str:
    """``error``'s message on one line."""
    return " ".join(str(error).split())
