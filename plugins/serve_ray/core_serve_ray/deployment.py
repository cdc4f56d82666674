"""The Ray Serve deployment: each replica runs core's whole life cycle and serves its app.

A replica is a Ray actor. When it starts, it runs core's start-up for the config as
``hypercorn core.app:app`` does (:meth:`core.app.ServeApp.build`, then the web app's
start-up): storage, binarizer, analysis, routes, architecture. Ray routes no request to a
replica before its start-up is done, and :meth:`CoreReplica.check_health` fails
until the model is loaded and whenever core's liveness probe fails (predictions stuck past
``predict_timeout``), so Ray replaces such a replica. Requests reach core's app as they
reach it under hypercorn: same routes, answers and errors.

``serve run core_serve_ray.deployment:build config=config.toml`` serves a config file with
Ray's own command (see :func:`build`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from ray import serve
from ray.serve import Application

from core.app import ServeApp, describe_startup_failure
from core.config import Config
from core_serve_ray.settings import RaySettings, read_config, shared_results

logger = logging.getLogger("core")


class StartupFailed(RuntimeError):
    """A replica could not load its model: the one line core would print, as the message
    (Ray puts it in the deployment's error, and ``core ray`` prints it)."""


@serve.ingress()
class CoreReplica:
    """One replica: core's app for ``config`` (a flat config dict, :meth:`Config.to_flat_dict`).

    The app is built in the replica (``__serve_build_asgi_app__``), never in the process that
    deploys it: each replica loads its own model, before Ray routes a request to it.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = dict(config)
        self._up: Any = None

    async def __serve_build_asgi_app__(self) -> Any:
        """core's start-up, as ``hypercorn core.app:app`` runs it in its lifespan (storage,
        binarizer, analysis, routes, architecture); a failure is :class:`StartupFailed` with
        core's line, so that Ray reports the replica as failed to start."""
        try:
            app = ServeApp(Config.from_dict(self._config), serves_metrics_port=False)
            up = await asyncio.to_thread(app.build)
            await up.web.startup()
        except Exception as error:
            line, details = describe_startup_failure(error)
            logger.error("%s", line if details is None else f"{line}\n{details}")
            raise StartupFailed(line) from None
        self._up = up
        return _ReplicaApp(up)

    def check_health(self) -> None:
        """Ray's health check: fails until the model is loaded and the app built, and while
        core's liveness probe (``/health/live``) fails."""
        up = self._up
        if up is None or not up.web.loaded:
            raise RuntimeError("the model is not loaded")
        probe = up.web.live()
        if not probe.ok:
            raise RuntimeError(f"core's liveness probe fails: {probe.reason}")


class _ReplicaApp:
    """The replica's ASGI app: core's app (``up.web.app``), already started. Its lifespan
    shutdown (Ray runs it when the replica stops) stops core's architecture and closes the
    model. core's echo of ``X-Request-Id`` is left out of the answers: Ray's proxy gives every
    request an ``X-Request-Id`` (the client's, or a new one), which core takes as the predict
    id, and adds it to every answer itself; core's echo would make it twice."""

    def __init__(self, up: Any) -> None:
        self.up = up
        self.app = up.web.app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_once(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_once)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})  # started in the constructor
            elif message["type"] == "lifespan.shutdown":
                await self.up.web.shutdown()
                self.up.ml.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def application(conf: Config, settings: RaySettings) -> Application:
    """The Ray Serve application that serves ``conf`` with ``settings`` (replicas,
    autoscaling, resources): give it to ``serve.run(app, name=..., route_prefix=...)``."""
    conf = shared_results(conf)
    deployment = serve.deployment(name="core", **settings.options)(CoreReplica)
    return deployment.bind(conf.to_flat_dict())


def build(args: Mapping[str, str]) -> Application:
    """The application builder for Ray's ``serve run``:
    ``serve run core_serve_ray.deployment:build config=config.toml``.

    ``config`` names a config file with its ``[ray]`` table; ``address``, ``app_name`` and
    ``route_prefix`` of the table are ``serve run``'s own options there (``--address``,
    ``--name``, ``--route-prefix``), and the proxy's host and port are Serve's
    (``serve start --http-host --http-port``, or ``http_options`` of a Serve config file).
    """
    path = args.get("config")
    if not path:
        from core.errors import ConfigError

        raise ConfigError("serve run: give the config file: serve run core_serve_ray.deployment:build "
                          "config=config.toml")
    conf, settings = read_config(path)
    return application(conf, settings)
