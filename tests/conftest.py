"""Shared fixtures: a real ``hypercorn core.app:app`` on 127.0.0.1 (:class:`core.testing.Server`),
talked to with httpx. The servers import ``support/`` (models, components) by dotted path."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.testing import Server, server_fixture

SUPPORT = Path(__file__).parent / "support"
sys.path.insert(0, str(SUPPORT))

#: ``serve(config_dict, env=..., pythonpath=...)`` starts a server and returns it; every
#: server is stopped when the test ends.
serve = server_fixture(pythonpath=[SUPPORT])
#: The same for a server kept for the whole module (tests that only read from it).
serve_module = server_fixture(scope="module", pythonpath=[SUPPORT])


@pytest.fixture
def server_factory(tmp_path: Path) -> Callable[..., Server]:
    """Build a Server without starting it (for start-up failure tests)."""

    def build(config: dict[str, Any], **options: Any) -> Server:
        return Server(config, directory=tmp_path, **{"pythonpath": [SUPPORT], **options})

    return build
