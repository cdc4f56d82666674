"""Shared fixtures: a real ``hypercorn core.app:app`` on 127.0.0.1, talked to with httpx."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from serving import Server


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """``serve(config_dict, env=..., pythonpath=...)`` starts a server and returns it."""
    servers: list[Server] = []

    def start(config: dict[str, Any], **kwargs: Any) -> Server:
        server = Server(config, tmp_path, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Any:
    """Build a Server without starting it (for start-up failure tests)."""
    return lambda config, **kw: Server(config, tmp_path, **kw)


