"""A real server for each test module: ``hypercorn core.app:app`` on loopback, started the way a
user starts it (``CORE_CONFIG`` naming a TOML file), stopped at the end (:mod:`core.testing`)."""

from __future__ import annotations

from core.testing import server_fixture

#: ``serve(config, pythonpath=[...])`` starts a :class:`core.testing.Server`; all are stopped
#: at module end.
serve = server_fixture(scope="module")
