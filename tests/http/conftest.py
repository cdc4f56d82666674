"""Fixtures of the admission gate's tests (the clients themselves are in ``hostile.py``).

``serve`` (from ``tests/conftest.py``) starts a server for one test; ``serve_module`` starts one
kept for the whole module, for the tests that only read from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile import Trickle

from core.testing import Server, server_fixture

SUPPORT = Path(__file__).parent.parent / "support"

serve_module = server_fixture(scope="module", pythonpath=[SUPPORT])


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
