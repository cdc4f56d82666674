"""``core.app:app``: the ASGI app that ``hypercorn core.app:app`` serves.

Importing this module does no work. At server start-up (the ASGI lifespan) the config is read
from the file named by ``CORE_CONFIG`` plus ``CORE_<KEY>`` overrides, the model is loaded and
analysed, and the web app is built; the server accepts requests only after that. A mistake in
the config or the model file stops start-up with one line naming what to fix.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from core.errors import CoreError

logger = logging.getLogger("core")

Scope = dict[str, Any]


def configure_logging(level: str = "INFO") -> None:
    """Give the ``core`` logger a stderr handler unless the host application set one up."""
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s] [core] [%(levelname)s] %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())


class ServeApp:
    """An ASGI app that builds the real one (``up.web.app``) during the lifespan start-up."""

    def __init__(self, conf: Any = None) -> None:
        self.conf = conf  # a preset core.Config (``core serve``); else read from the environment
        self.up: Any = None
        self._inner: Any = None

    def build(self) -> Any:
        from core.config import Config
        from core.up import UP

        conf = self.conf if self.conf is not None else Config.from_env()
        configure_logging(conf.log_level)
        up = UP(conf=conf)
        up.ml.load()
        up.web.load()
        return up

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self._inner is None:  # a server without lifespan support
            await _plain_503(scope, send)
            return
        await self._inner(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                configure_logging()
                try:
                    self.up = await asyncio.to_thread(self.build)
                    await self.up.web.startup()
                    self._inner = self.up.web.app
                except CoreError as error:
                    # A user mistake: one line, exit 1. Reporting "startup.failed" to hypercorn
                    # would print a traceback and still exit 0 from the parent process.
                    logger.error("core: cannot start: %s", error)
                    for handler in logger.handlers:
                        handler.flush()
                    sys.stderr.flush()
                    os._exit(1)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.up is not None:
                    await self.up.web.shutdown()
                    self.up.ml.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _plain_503(scope: Scope, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b'{"detail":[{"loc":[],"msg":"the model is not loaded (server without lifespan?)","type":"unavailable"}]}'
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


app = ServeApp()
