"""``EmptyModel``: a model that returns what it is given (pymlup's ``mlup.ml.empty``)."""

from __future__ import annotations

from typing import Any


class EmptyModel:
    """Echoes its rows; handy for trying the service and for tests."""

    def predict(self, X: Any) -> Any:
        return X
