"""Models that fail the way native code and the OOM killer make a process fail, for the
start-up and worker-crash tests (``storage_type = "components.ObjectStorage"``)."""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any, ClassVar

import attrs
from components import ObjectStorage

import core


@attrs.define(kw_only=True)
class ObjectsStorage(ObjectStorage):
    """``components.ObjectStorage`` saying that it hands over a model object, so that
    ``core serve`` and ``core validate`` need no binarizer for it (core alone)."""

    hands_over_objects: ClassVar[bool] = True


def config(spec: str, **extra: Any) -> dict[str, Any]:
    """A config serving the object ``spec`` (``"module:attr"``) of ``support/``."""
    return {"name": "test-model", "storage_type": "faults.ObjectsStorage",
            "storage_kwargs": {"spec": spec}, **extra}


#: The file (named by this environment variable) where each call writes ``<pid> <tag>``.
CALLS_LOG = "FAULTS_CALLS_LOG"


class CrashingModel:
    """Answers with the pid of the process that ran it, after ``seconds``; ``crash`` makes it
    die instead: ``"segfault"`` reads address 0, ``"exit"`` calls ``os._exit(1)``. With
    ``$FAULTS_CALLS_LOG`` set, each call first writes ``<pid> <tag>`` there."""

    def predict(self, X: Any, crash: str = "", seconds: float = 0.0, tag: str = "") -> Any:
        if os.environ.get(CALLS_LOG):
            with open(os.environ[CALLS_LOG], "a") as calls:
                calls.write(f"{os.getpid()} {tag}\n")
        if crash == "segfault":
            ctypes.string_at(0)
        elif crash == "exit":
            os._exit(1)
        time.sleep(seconds)
        return {"pid": os.getpid(), "rows": len(X)}


crashing_model = CrashingModel()


class BrokenArchitecture(core.Architecture):
    """An architecture with a bug (not a user mistake): building it raises RuntimeError."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # whatever core builds it with
        raise RuntimeError("a bug in BrokenArchitecture")

    async def predict(self, data: dict[str, Any], predict_id: str) -> Any:  # pragma: no cover
        raise AssertionError("never built")
