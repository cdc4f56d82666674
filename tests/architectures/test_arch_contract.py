"""The built-in architectures pass the contract suite every architecture plugin gets."""

from __future__ import annotations

from typing import Any

import pytest

from core.architectures.batching import Batching
from core.architectures.direct import DirectlyToPredict
from core.architectures.worker_and_queue import WorkerAndQueue
from core.testing import ArchitectureContract


class TestDirectlyToPredict(ArchitectureContract):
    name = "directly_to_predict"

    @pytest.fixture
    def architecture_class(self) -> type:
        return DirectlyToPredict


class TestWorkerAndQueue(ArchitectureContract):
    name = "worker_and_queue"

    @pytest.fixture
    def architecture_class(self) -> type:
        return WorkerAndQueue


class TestBatching(ArchitectureContract):
    name = "batching"

    @pytest.fixture
    def architecture_class(self) -> type:
        return Batching

    @pytest.fixture
    def settings(self) -> dict[str, Any]:
        return {"max_batch_size": 8, "max_batch_wait": 5}


class TestBatchingByDottedPath(ArchitectureContract):
    """A custom architecture is chosen by dotted path the same way (``name = None``)."""

    @pytest.fixture
    def architecture_class(self) -> type:
        return Batching
