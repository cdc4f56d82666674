"""``core.app:app``: the ASGI app that ``hypercorn core.app:app`` (or ``uvicorn core.app:app``) serves.

Importing this module does no work. At server start-up (the ASGI lifespan) the config is read
from the file named by ``CORE_CONFIG`` plus ``CORE_<KEY>`` overrides, the model is loaded and
analysed, and the web app is built; the server accepts requests only after that.

Any failure during start-up stops the process with exit code 1 and one line,
``core: cannot start: ...``: a user mistake (:class:`core.errors.CoreError`) names what to
fix; anything else is a bug, so its type and message are on the line and its traceback
follows. The app never answers without its model: hypercorn would otherwise log "continuing
without Lifespan support" and serve.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from core.errors import CoreError
from core.logs import configure_logging

logger = logging.getLogger("core")

Scope = dict[str, Any]
#: ``on_startup_failure(line, details)``: reports why start-up failed and ends the process.
StartupFailure = Callable[[str, "str | None"], NoReturn]


def describe_startup_failure(error: BaseException) -> tuple[str, str | None]:
    """The one line that says why start-up failed, and the traceback that follows it for a
    bug (anything but a :class:`~core.errors.CoreError`, which is a user mistake)."""
    if isinstance(error, CoreError):
        return f"core: cannot start: {error}", None
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return f"core: cannot start: {type(error).__name__}: {error}", details.rstrip("\n")


def exit_on_startup_failure(line: str, details: str | None) -> NoReturn:
    """Log ``line`` (and the traceback after it) and end the process with exit code 1.

    ``os._exit``: hypercorn would log a "startup.failed" report with a traceback, and its
    parent process would still exit 0; threads still loading would keep the process alive.
    """
    logger.critical("%s", line if details is None else f"{line}\n{details}")
    for handler in (*logger.handlers, *logging.getLogger().handlers):
        handler.flush()
    sys.stderr.flush()
    os._exit(1)


class ServeApp:
    """An ASGI app that builds the real one (``up.web.app``) during the lifespan start-up.

    :param conf: a preset :class:`core.Config` (``core serve``); by default it is read from
        the environment at start-up.
    :param on_startup_failure: called with the line saying why start-up failed and, for a
        bug, the traceback; it must end the process (default: :func:`exit_on_startup_failure`).
    :param serves_metrics_port: whether this process answers ``metrics_port`` (a worker of
        ``core serve --workers N`` does not: its supervisor answers for all).
    """

    def __init__(self, conf: Any = None, *,
                 on_startup_failure: StartupFailure = exit_on_startup_failure,
                 serves_metrics_port: bool = True) -> None:
        self.conf = conf
        self.on_startup_failure = on_startup_failure
        self.serves_metrics_port = serves_metrics_port
        self.up: Any = None
        self._inner: Any = None

    def build(self) -> Any:
        from core.config import Config
        from core.up import UP

        conf = self.conf if self.conf is not None else Config.from_env()
        configure_logging(conf.log_level, conf.log_format)
        up = UP(conf=conf)
        up.web.serves_metrics_port = self.serves_metrics_port
        up.ml.load()
        up.web.load()
        return up

    def drain(self) -> None:
        """A graceful shutdown begins: the web app stops being ready and closes each
        connection after its answer (:meth:`core.web.Web.drain`)."""
        if self.up is not None:
            self.up.web.drain()

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
                except asyncio.CancelledError:
                    raise
                except BaseException as error:  # SystemExit from a model's import too
                    self.on_startup_failure(*describe_startup_failure(error))
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
