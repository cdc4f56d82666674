"""A model that takes its time, served by dotted path (``storage_type =
"slow_models.SlowStorage"``) in the servers these tests start."""

from __future__ import annotations

import time
from typing import Any

import attrs
import numpy as np
from core.components import LoadedFile, Storage


class SlowSum:
    """``sum(row) * scale`` per row, after ``delay`` seconds; a row holding -1 makes it raise."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def predict(self, X: Any, scale: float = 1.0) -> Any:
        time.sleep(self.delay)
        x = np.asarray(X, dtype=np.float64)
        if (x == -1).any():
            raise ValueError("a row holds -1")
        return x.sum(axis=1) * scale


@attrs.define
class SlowStorage(Storage):
    """Hands over a :class:`SlowSum`."""

    delay: float = 0.0

    def load(self) -> list[LoadedFile]:
        return [LoadedFile(obj=SlowSum(self.delay), name="slow-sum")]
