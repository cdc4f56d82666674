"""Fixtures: moto's S3 server, an HTTP file server, an empty cache, core's servers (the
classes behind them are in ``remote_support.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
for folder in (HERE, HERE / "models"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from core.testing import server_fixture  # noqa: E402
from remote_support import MODELS, cache, s3, s3_server, web  # noqa: E402

__all__ = ["cache", "s3", "s3_server", "serve", "web"]

#: ``serve(config, ...)`` starts a real ``hypercorn core.app:app``, stopped after the test.
serve = server_fixture(scope="function", pythonpath=[MODELS, HERE])
