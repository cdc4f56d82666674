"""Fixtures: a model file and a config as a user writes them, and pods emulated from manifests
(:mod:`k8s_support`)."""

from __future__ import annotations

import itertools
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent / "models")]

from deploy_models import Sleeper  # noqa: E402
from k8s_support import Pod  # noqa: E402


@pytest.fixture
def model_file(tmp_path: Path) -> Callable[..., Path]:
    """``model_file(load_seconds=0)``: a pickled :class:`Sleeper` on disk."""

    def write(load_seconds: float = 0.0) -> Path:
        path = tmp_path / f"sleeper-{load_seconds:g}.pkl"
        path.write_bytes(pickle.dumps(Sleeper(load_seconds)))
        return path

    return write


@pytest.fixture
def config_file(tmp_path: Path, model_file: Callable[..., Path]) -> Callable[..., Path]:
    """``config_file(load_seconds=0, filename="config.toml", **settings)``: a TOML config
    serving the pickled model from disk."""

    def write(load_seconds: float = 0.0, filename: str = "config.toml", **settings: Any) -> Path:
        path = tmp_path / filename
        path.write_text(tomli_w.dumps({
            "name": "sleeper", "storage_type": "disk", "binarization_type": "pickle",
            "storage_kwargs": {"path_to_files": str(model_file(load_seconds))}, **settings}))
        return path

    return write


@pytest.fixture
def pod(tmp_path: Path) -> Callable[[list[dict[str, Any]]], Pod]:
    """``pod(documents)``: a :class:`Pod` of those manifests, in its own folder."""
    count = itertools.count()

    def make(documents: list[dict[str, Any]]) -> Pod:
        return Pod(documents, tmp_path / f"pod-{next(count)}")

    return make
