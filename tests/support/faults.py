"""Models that fail the way native code and the OOM killer make a process fail, for the
start-up and worker-crash tests (``storage_type = "components.ObjectStorage"``)."""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

import core


class CrashingModel:
    """Answers with the pid of the process that ran it; ``crash`` makes it die instead:
    ``"segfault"`` reads address 0, ``"exit"`` calls ``os._exit(1)``."""

    def predict(self, X: Any, crash: str = "", seconds: float = 0.0) -> Any:
        if crash == "segfault":
            ctypes.string_at(0)
        elif crash == "exit":
            os._exit(1)
        time.sleep(seconds)
        return {"pid": os.getpid(), "rows": len(X)}


crashing_model = CrashingModel()


class BrokenArchitecture(core.Architecture):
    """An architecture with a bug (not a user mistake): building it raises RuntimeError."""

    def __init__(self, up: Any) -> None:
        raise RuntimeError("a bug in BrokenArchitecture")

    async def predict(self, data: dict[str, Any], predict_id: str) -> Any:  # pragma: no cover
        raise AssertionError("never built")
