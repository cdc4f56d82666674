"""A real ``hypercorn core.app:app`` on 127.0.0.1 for the architecture tests.

``arch_server(config, *hypercorn_args)`` starts a :class:`core.testing.Server` with
``PYTHONPATH`` including ``helpers/`` (so ``storage_type = "arch_models.ModelStorage"`` works
with core alone) and returns it once ``/health`` answers (``.url``, ``.terminate()``,
``.wait()``, ``.log()``). Every server is stopped (SIGTERM, then SIGKILL of its process
group) when the test ends.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.testing import Server, Servers

HELPERS = Path(__file__).parent / "helpers"
sys.path.insert(0, str(HELPERS))


@pytest.fixture
def arch_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``arch_server(config_dict, *hypercorn_args)`` -> a started :class:`Server`."""
    with Servers(tmp_path, pythonpath=[HELPERS]) as servers:

        def start(config: dict[str, Any], *hypercorn_args: str) -> Server:
            return servers.start(config, hypercorn_args=hypercorn_args)

        yield start
