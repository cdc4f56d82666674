"""Fixtures of the admission gate's tests (the clients themselves are in ``hostile.py``).

``serve`` and ``serve_module`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hostile import Trickle

from core.testing import Server


@pytest.fixture
def trickle() -> Iterator[Callable[..., Trickle]]:
    """``trickle(server, path)`` opens a :class:`Trickle`; all are closed when the test ends."""
    opened: list[Trickle] = []

    def open_one(server: Server, path: str, **options: Any) -> Trickle:
        connection = Trickle(server, path, **options)
        opened.append(connection)
        return connection

    yield open_one
    for connection in opened:
        connection.close()
