"""Models and a storage for the architecture tests, imported by the server subprocess through
``PYTHONPATH`` (``storage_type = "arch_models.ModelStorage"``: core alone, no plugin).

``storage_kwargs`` picks the model and its behaviour::

    storage_kwargs = {model = "sum", delay = 0.2, calls_file = "/tmp/calls.log"}

Every model appends one line per call to ``calls_file``: the number of rows it was given, so
a test can see which requests were merged into one call.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import attrs
import numpy as np

import core

#: A row holding this value makes SumModel raise (tests that an error fails its batch alone).
POISON = -999.0


class _Recorder:
    def __init__(self, calls_file: str | None, delay: float) -> None:
        self.calls_file = calls_file
        self.delay = delay
        self.lock = threading.Lock()

    def record(self, rows: int) -> None:
        if self.calls_file:
            with self.lock, open(self.calls_file, "a") as file:
                file.write(f"{rows}\n")
        if self.delay:
            time.sleep(self.delay)


class SumModel:
    """One result per row: ``sum(row) * scale + offset``. Raises on a POISON row."""

    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    def predict(self, X: Any, scale: float = 1.0, offset: int = 0) -> Any:
        x = np.asarray(X, dtype=np.float64)
        self.recorder.record(len(x))
        if (x == POISON).any():
            raise ValueError("poison row in the batch")
        return x.sum(axis=1) * scale + offset


class DictModel:
    """ONNX-like: a dict of per-row arrays."""

    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    def predict(self, X: Any) -> Any:
        x = np.asarray(X, dtype=np.float64)
        self.recorder.record(len(x))
        return {"sum": x.sum(axis=1), "first": x[:, 0].astype(np.int64)}


class WrongRowsModel:
    """Returns one row fewer than it was given."""

    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    def predict(self, X: Any) -> Any:
        x = np.asarray(X, dtype=np.float64)
        self.recorder.record(len(x))
        return x.sum(axis=1)[:-1] if len(x) > 1 else x.sum(axis=1)


class FaultyModel:
    """Quick row sums, except where a row's first value asks for a fault:

    ``-1`` raises, ``-2`` hangs (sleeps ``HANG`` seconds), ``-3`` is slow (1 s), ``-4``
    segfaults, ``-5`` exits the process. A fault row looks like any other row of its size, so
    a kind of call promoted to run inline meets it there.
    """

    HANG = 6.0

    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    def predict(self, X: Any) -> Any:
        x = np.asarray(X, dtype=np.float64)
        self.recorder.record(len(x))
        first = set(x[:, 0].tolist()) if x.size else set()
        if -1.0 in first:
            raise ValueError("the model refuses this row")
        if -2.0 in first:
            time.sleep(self.HANG)
        if -3.0 in first:
            time.sleep(1.0)
        if -4.0 in first:
            import ctypes

            ctypes.string_at(0)  # a segmentation fault
        if -5.0 in first:
            os._exit(1)
        return x.sum(axis=1)


MODELS = {"sum": SumModel, "dict": DictModel, "wrong_rows": WrongRowsModel, "faulty": FaultyModel}


@attrs.define(kw_only=True)
class ModelStorage(core.Storage):
    """Builds one of :data:`MODELS` in memory."""

    hands_over_objects = True  # no binarizer needed, for core serve too

    model: str = "sum"
    delay: float = 0.0
    calls_file: str | None = None

    def load(self) -> list[core.LoadedFile]:
        recorder = _Recorder(self.calls_file, self.delay)
        return [core.LoadedFile(obj=MODELS[self.model](recorder), name=f"{self.model}-model")]


def read_calls(path: str | os.PathLike[str]) -> list[int]:
    """The row count of every model call recorded in ``path``."""
    try:
        with open(path) as file:
            return [int(line) for line in file if line.strip()]
    except FileNotFoundError:
        return []


def model_config(model: str = "sum", *, delay: float = 0.0,
                 calls_file: str | os.PathLike[str] | None = None, **settings: Any) -> dict[str, Any]:
    """A config serving one of :data:`MODELS` by the dotted-path storage."""
    storage_kwargs: dict[str, Any] = {"model": model, "delay": delay}
    if calls_file is not None:
        storage_kwargs["calls_file"] = str(calls_file)
    return {"name": f"{model}-model", "storage_type": "arch_models.ModelStorage",
            "storage_kwargs": storage_kwargs, "log_level": "WARNING", **settings}
