"""The model the served tests deploy, pickled to a file as a user's model is."""

from __future__ import annotations

import time
from typing import Any


class Sleeper:
    """Each row's sum, after sleeping the first value of the first row in seconds (a long
    prediction on demand); unpickling it sleeps ``load_seconds`` (a model slow to load)."""

    def __init__(self, load_seconds: float = 0.0) -> None:
        self.load_seconds = load_seconds

    def __setstate__(self, state: dict[str, Any]) -> None:
        time.sleep(state["load_seconds"])
        self.__dict__.update(state)

    def predict(self, X: Any) -> Any:
        time.sleep(float(X[0][0]))
        return X.sum(axis=1)
