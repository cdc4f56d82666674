"""Components defined outside any plugin, used by dotted path (``storage_type =
"components.ObjectStorage"``), so the core's tests run with the core alone."""

from __future__ import annotations

import importlib
from typing import Any

import attrs

import core


@attrs.define(kw_only=True)
class ObjectStorage(core.Storage):
    """Hands over the object named by ``spec`` ("module:attr")."""

    hands_over_objects = True  # no binarizer needed (``core serve`` checks for one otherwise)
    spec: str

    def load(self) -> list[core.LoadedFile]:
        module, _, attr = self.spec.partition(":")
        return [core.LoadedFile(obj=getattr(importlib.import_module(module), attr), name=self.spec)]


@attrs.define(kw_only=True)
class TextFileStorage(core.Storage):
    """Reads one text file (tests a storage + binarizer pair by dotted path)."""

    path: str

    def load(self) -> list[core.LoadedFile]:
        with open(self.path, "rb") as f:
            return [core.LoadedFile(path=self.path, raw_data=f.read())]


class ScaleModel:
    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, X: Any) -> Any:
        import numpy as np

        return np.asarray(X) * self.factor


class TextBinarizer(core.Binarizer):
    """A file holding one number becomes a model that multiplies by it."""

    @classmethod
    def detect(cls, file: core.LoadedFile) -> tuple[float, str]:
        return (0.9, "ends with .factor") if (file.path or "").endswith(".factor") else (0.0, "not .factor")

    def deserialize(self, files: list[core.LoadedFile]) -> Any:
        raw = files[0].raw_data
        assert raw is not None
        return ScaleModel(float(bytes(raw).decode()))
