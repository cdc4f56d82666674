"""The Ray Serve deployment: each replica runs core's whole life cycle and serves its app.

A replica is a Ray actor. When it starts, it builds core's ASGI app for the config
(:class:`core.app.ServeApp`, the object ``hypercorn core.app:app`` serves), and Ray runs the
app's lifespan start-up: storage, binarizer, analysis, routes, architecture. Ray routes no
request to a replica before its start-up is done, and :meth:`CoreReplica.check_health` fails
until the model is loaded and whenever core's liveness probe fails (predictions stuck past
``predict_timeout``), so Ray replaces such a replica. Requests reach core's app as they
reach it under hypercorn: same routes, answers and errors.

``serve run core_serve_ray.deployment:build config=config.toml`` serves a config file with
Ray's own command (see :func:`build`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NoReturn

from ray import serve
from ray.serve import Application

from core.app import ServeApp
from core.config import Config
from core_serve_ray.settings import RaySettings, read_config, shared_results

logger = logging.getLogger("core")


class StartupFailed(RuntimeError):
    """A replica could not load its model: the one line core would print, as the message."""


def _fail(line: str, details: str | None) -> NoReturn:
    """core's start-up failure inside a replica: raised, so that Ray reports the replica as
    failed to start (and retries it) instead of the process exiting under Ray."""
    if details:
        logger.error("%s\n%s", line, details)
    raise StartupFailed(line)


@serve.ingress()
class CoreReplica:
    """One replica: core's app for ``config`` (a flat config dict, :meth:`Config.to_flat_dict`).

    The app is built in the replica (``__serve_build_asgi_app__``), never in the process that
    deploys it: each replica loads its own model.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = dict(config)
        self._app: ServeApp | None = None

    def __serve_build_asgi_app__(self) -> Any:
        conf = Config.from_dict(self._config)
        self._app = ServeApp(conf, on_startup_failure=_fail, serves_metrics_port=False)
        return _OneRequestId(self._app)

    def check_health(self) -> None:
        """Ray's health check: fails until the model is loaded and the app built, and while
        core's liveness probe (``/health/live``) fails."""
        up = self._app.up if self._app is not None else None
        if up is None or not up.web.loaded:
            raise RuntimeError("the model is not loaded")
        probe = up.web.live()
        if not probe.ok:
            raise RuntimeError(f"core's liveness probe fails: {probe.reason}")


class _OneRequestId:
    """core's app with its echo of ``X-Request-Id`` left out of the answers: Ray's proxy
    gives every request an ``X-Request-Id`` (the client's, or a new one), which core takes as
    the predict id, and adds it to every answer itself; core's echo would make it twice."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_once(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_once)


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
