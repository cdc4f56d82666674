"""``up.web``: the Starlette app that serves an analysed model, and running it under hypercorn.

``load()`` builds the app: the architecture (chosen by ``mode``), the admission gate
(:mod:`core.http`) every prediction route goes through, core's own routes, and each plugin's
(``register_routes``, which gets a :class:`core.http.Service`). Errors become JSON responses in
one place, the gate; routes outside it (``/info``, the probes) answer from state.
"""

from __future__ import annotations

import asyncio
import gc
import html
import logging
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol, cast

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from core import openapi, pymlup_wire
from core.components import Architecture, Deferred
from core.errors import ConfigError, CoreError, InternalError, RequestError, ValidationError, WebAppLoadError
from core.http import (
    CORE_ERRORS,
    PREDICT_ID_HEADER,
    Admission,
    App,
    Gate,
    JSONResponse,
    Limits,
    Probe,
    Service,
    dumps,
    error_response,
    new_predict_id,
)

if TYPE_CHECKING:
    from core.config import Config
    from core.metrics import Metrics
    from core.ml import ML
    from core.plugins import Plugins
    from core.tracing import Tracer


class Owner(Protocol):
    """What :class:`Web` reads of the object that owns it (:class:`core.UP`), looked up at
    each use so that ``up.conf`` may be replaced."""

    conf: Config
    plugins: Plugins
    ml: ML

    def info(self) -> dict[str, Any]: ...

logger = logging.getLogger("core")


class Web:
    """The web side of :class:`core.UP`: ``load()`` builds :attr:`app`."""

    def __init__(self, up: Owner) -> None:
        self.up = up
        self._app: App | None = None
        self.architecture: Architecture | None = None
        self.gate: Gate | None = None
        self.service: Service | None = None
        self.started = threading.Event()
        self._openapi: dict[str, Any] = {}
        self._server_thread: threading.Thread | None = None
        self._server_loop: asyncio.AbstractEventLoop | None = None
        self._server_stop: asyncio.Event | None = None
        #: The service's metrics (None with ``metrics = false``).
        self.metrics: Metrics | None = None
        #: Whether this process answers ``metrics_port`` (with ``core serve --workers N`` the
        #: supervisor does, for every worker).
        self.serves_metrics_port = True

    @property
    def loaded(self) -> bool:
        return self._app is not None

    @property
    def app(self) -> App:
        """The Starlette app; add your own routes to it (``up.web.app.add_api_route(...)``,
        ``@up.web.app.post(...)``)."""
        if self._app is None:
            raise WebAppLoadError("the web app is not built; call up.web.load() first")
        return self._app

    @property
    def active_predicts(self) -> int:
        """Requests holding a prediction slot now."""
        return self.gate.active if self.gate is not None else 0

    # ------------------------------------------------------------------ building

    def load(self) -> None:
        """(Re)build the app from the loaded model and the current config."""
        ml = self.up.ml
        if not ml.loaded or ml.interface is None:
            raise WebAppLoadError("the model is not loaded; call up.ml.load() before up.web.load()")
        from core.ml import build

        conf = self.up.conf
        plugins = self.up.plugins
        metrics = self._build_metrics() if conf.metrics else None
        self.metrics = ml.metrics = metrics
        cls = plugins.architectures.get(conf.mode)
        architecture: Architecture = build("architecture", cls, {"host": ml}, "mode")
        self.architecture = architecture
        predict = plugins.request_path_call(
            "architecture_predict", "architecture", architecture, architecture.predict,
            "data", "predict_id",
        )
        gate = Gate(Limits.from_config(conf), predict, ml.row_count, ml.rows_name, metrics=metrics,
                    access_log=conf.access_log, request_ids=not architecture.deferred)
        self.gate = gate
        service = Service(conf=conf, model=ml.model_obj, interface=ml.interface, gate=gate,
                          validate=ml.validate, live=self.live, ready=self.ready)
        self.service = service
        if metrics is not None:
            if isinstance(getattr(type(architecture), "queue_depth", None), property):
                metrics.watch_queue(lambda: architecture.queue_depth)  # type: ignore[attr-defined]
            plugins.hook.register_metrics(registry=metrics.registry, service=service)
        gate.tracer = _tracer(plugins, service)
        wire = conf.pymlup_wire_format  # pymlup's answers (core.pymlup_wire)
        routes: list[BaseRoute] = [  # /predict first: Starlette tries routes in order
            gate.route("/predict", self._predict_pymlup, errors=pymlup_wire.PYMLUP_ERRORS) if wire
            else gate.route("/predict", self._predict),
            Route("/health", self.health, methods=["GET", "OPTIONS"] if wire else ["GET"]),
            Route("/health/live", self.health_live, methods=["GET"]),
            Route("/health/ready", self.health_ready, methods=["GET"]),
            Route("/info", self.info, methods=["GET"]),
        ]
        if architecture.deferred:
            routes.append(Route("/get-predict/{predict_id}", self.get_predict, methods=["GET"]))
        if metrics is not None and conf.metrics_port is None:
            routes.append(Route("/metrics", self.scrape, methods=["GET"], include_in_schema=False))
        if conf.show_docs:
            routes += [
                Route("/openapi.json", self.openapi, methods=["GET"], include_in_schema=False),
                Route("/docs", self.docs, methods=["GET"], include_in_schema=False),
                Route("/redoc", self.redoc, methods=["GET"], include_in_schema=False),
            ]
        for extra in plugins.hook.register_routes(service=service):
            routes += extra or []
        routes = catch_alls_last(routes)
        self._app = App(
            debug=conf.debug,
            routes=routes,
            lifespan=self._lifespan,
            exception_handlers={HTTPException: self._http_error, Exception: self._server_error},
            gate=gate,
            handler_timeout=conf.predict_timeout,
        )
        self._openapi = openapi.document(conf, ml.interface, plugins.hook.extend_openapi(service=service))

    def _build_metrics(self) -> Metrics:
        from core.metrics import Metrics, multiprocess_directory

        ml, conf = self.up.ml, self.up.conf
        metrics = Metrics(conf, multiprocess_directory())
        metrics.describe_model(conf.name, conf.version, ml.binarizer_name, conf.storage_type,
                               ml.load_seconds)
        return metrics

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    async def startup(self) -> None:
        assert self.architecture is not None and self.gate is not None
        self.gate.accepting = True
        self.gate.draining = False
        conf = self.up.conf
        if self.metrics is not None:
            self.metrics.start()
            if conf.metrics_port is not None and self.serves_metrics_port:
                self.metrics.serve(conf.host, conf.metrics_port)
        await self.architecture.start()
        _freeze_heap()
        self.started.set()

    def drain(self) -> None:
        """A graceful shutdown begins (SIGTERM): readiness turns false, and every answer
        closes its connection so that clients stop sending on it."""
        if self.gate is not None and not self.gate.draining:
            self.gate.draining = True
            logger.info("shutting down: finishing the requests in progress")

    async def shutdown(self) -> None:
        """The grace period is over: refuse new requests (503), let the architecture finish
        what it can in ``timeout_for_shutdown_daemon``, and say how many requests were
        answered 503."""
        gate = self.gate
        if gate is not None:
            gate.draining = True
            gate.accepting = False
        if self.architecture is not None:
            await self.architecture.stop(self.up.conf.timeout_for_shutdown_daemon)
        if self.metrics is not None:
            self.metrics.close()
        if gate is not None:
            gate.close()
            if gate.cancelled:
                logger.warning("shutdown: %d request(s) could not finish in the grace period and "
                               "were answered 503", gate.cancelled)
        self.started.clear()
        gc.unfreeze()

    # ------------------------------------------------------------------ probes

    def live(self) -> Probe:
        """Liveness: false only when the process should be restarted, that is when more
        predictions are stuck past ``predict_timeout`` than ``max_stuck_predicts``."""
        stuck = self.up.ml.runner.stuck
        limit = self.up.conf.max_stuck_predicts
        if stuck > limit:
            return Probe(False, f"{stuck} prediction(s) stuck past predict_timeout "
                                f"(max_stuck_predicts = {limit}): restart the process")
        return Probe(True)

    def ready(self) -> Probe:
        """Readiness: true while the server takes predictions: not starting, not draining,
        not saturated, and live."""
        gate, architecture = self.gate, self.architecture
        if gate is None or architecture is None or not self.started.is_set():
            return Probe(False, "starting")
        if gate.draining or not gate.accepting:
            return Probe(False, "shutting down")
        if gate.saturated:
            return Probe(False, f"saturated: {gate.active} predictions running "
                                f"(throttling_max_requests = {gate.limits.throttling_max_requests})")
        if architecture.saturated:
            return Probe(False, "saturated: the prediction queue is full (max_queue_size)")
        live = self.live()
        return live if not live.ok else Probe(True)

    # ------------------------------------------------------------------ endpoints

    async def _predict(self, admission: Admission) -> Any:
        """``POST /predict``: the body's predict arguments -> ``{"predict_result": ...}``."""
        reader = self.up.ml.body_reader
        assert reader is not None
        data = await admission.parse(reader, large=reader.offloaded)
        result = await admission.predict(data)
        if isinstance(result, Deferred):
            return result
        return dumps({"predict_result": result})

    async def _predict_pymlup(self, admission: Admission) -> Any:
        """``POST /predict`` in pymlup's wire format (:mod:`core.pymlup_wire`)."""
        reader = self.up.ml.body_reader
        assert reader is not None
        result = await admission.predict(await admission.parse(reader, large=reader.offloaded))
        if isinstance(result, Deferred):
            return pymlup_wire.deferred(result.predict_id)
        assert self.up.ml.interface is not None
        return {"predict_result": pymlup_wire.outputs(result, self.up.conf, self.up.ml.interface)}

    async def scrape(self, request: Request) -> Response:
        """``GET /metrics``: every worker's metrics, in the Prometheus text format (or
        OpenMetrics when the scraper asks for it)."""
        assert self.metrics is not None
        body, content_type = await asyncio.to_thread(self.metrics.render, request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    async def health(self, request: Request) -> Response:
        conf = self.up.conf
        if conf.pymlup_wire_format:
            return JSONResponse(pymlup_wire.HEALTH)
        return JSONResponse({"status": "ok", "model": conf.name, "version": conf.version})

    async def health_live(self, request: Request) -> Response:
        probe = self.live()
        return JSONResponse({"live": probe.ok, **({"reason": probe.reason} if probe.reason else {})},
                            status_code=200 if probe.ok else 503)

    async def health_ready(self, request: Request) -> Response:
        probe = self.ready()
        return JSONResponse({"ready": probe.ok, **({"reason": probe.reason} if probe.reason else {})},
                            status_code=200 if probe.ok else 503)

    async def info(self, request: Request) -> Response:
        ml = self.up.ml
        if self.up.conf.pymlup_wire_format:
            return JSONResponse(pymlup_wire.info(self.up.conf, ml.interface, ml.model_obj))
        return JSONResponse(self.up.info())

    async def get_predict(self, request: Request) -> Response:
        """``GET /get-predict/{predict_id}``: a long prediction's result."""
        assert self.architecture is not None
        predict_id = request.path_params["predict_id"]
        conf = self.up.conf
        if conf.pymlup_wire_format:  # the bare result, or 408 after waiting for it
            try:
                result = await pymlup_wire.wait_for_result(self.architecture.result, predict_id,
                                                           conf.ttl_client_wait)
            except RequestError as error:
                return pymlup_wire.PYMLUP_ERRORS.response(error, predict_id)
            return Response(dumps(result), media_type="application/json")
        try:
            result = await self.architecture.result(predict_id)
        except RequestError as error:
            return error_response(error, predict_id)
        return Response(dumps({"predict_result": result}), media_type="application/json",
                        headers={PREDICT_ID_HEADER: predict_id})

    async def openapi(self, request: Request) -> Response:
        document = self._openapi
        api_paths = self.app.api_paths
        if api_paths:
            document = {**document, "paths": {**document["paths"], **api_paths}}
        return JSONResponse(document)

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(openapi.SWAGGER_HTML.replace("{title}", self.up.conf.name))

    async def redoc(self, request: Request) -> Response:
        return HTMLResponse(openapi.REDOC_HTML.replace("{title}", html.escape(self.up.conf.name)))

    async def _http_error(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return JSONResponse(
            {"detail": [{"loc": [], "msg": error.detail, "type": "http_error"}]},
            status_code=error.status_code,
            headers=error.headers,
        )

    async def _server_error(self, request: Request, error: Exception) -> Response:
        if isinstance(error, RequestError):
            return error_response(error)
        logger.exception("unexpected error serving %s", request.url.path)
        return error_response(InternalError(f"{type(error).__name__}: {error}"))

    # ------------------------------------------------------------------ running

    def hypercorn_config(self) -> Any:
        from hypercorn.config import Config as HypercornConfig

        config = HypercornConfig()
        config.bind = [f"{self.up.conf.host}:{self.up.conf.port}"]
        config.startup_timeout = 24 * 3600  # the model loads before the app starts
        config.graceful_timeout = self.up.conf.timeout_for_shutdown_daemon
        config.accesslog = None
        return config

    def run(self, daemon: bool = False) -> None:
        """Serve with hypercorn: block until SIGINT/SIGTERM, or (``daemon``) in a thread."""
        from hypercorn.asyncio import serve

        if not daemon:
            asyncio.run(serve(self.app, self.hypercorn_config(),  # type: ignore[arg-type]
                              shutdown_trigger=self.shutdown_trigger()))
            return
        if self._server_thread is not None and self._server_thread.is_alive():
            raise WebAppLoadError("the web app is already running; call up.stop_web_app() first")
        ready = threading.Event()
        failure: list[BaseException] = []

        def target() -> None:
            loop = asyncio.new_event_loop()
            self._server_loop = loop
            self._server_stop = asyncio.Event()
            ready.set()
            try:
                loop.run_until_complete(
                    serve(self.app, self.hypercorn_config(), shutdown_trigger=self._server_stop.wait)  # type: ignore[arg-type]
                )
            except BaseException as error:  # reported to the caller below
                failure.append(error)
            finally:
                loop.close()

        self.started.clear()
        self._server_thread = threading.Thread(target=target, name="core-web", daemon=True)
        self._server_thread.start()
        ready.wait()
        deadline = time.monotonic() + 60
        host = "127.0.0.1" if self.up.conf.host in ("0.0.0.0", "") else self.up.conf.host
        while time.monotonic() < deadline:
            if failure or not self._server_thread.is_alive():
                raise WebAppLoadError(f"the web app failed to start: {failure[0] if failure else 'exited'}")
            if self.started.is_set():
                try:
                    with socket.create_connection((host, self.up.conf.port), timeout=0.2):
                        return
                except OSError:
                    pass
            time.sleep(0.02)
        raise WebAppLoadError(f"the web app did not start listening on port {self.up.conf.port} in 60s")

    def shutdown_trigger(self) -> Any:
        """hypercorn's ``shutdown_trigger``: returns at SIGINT or SIGTERM, after marking the
        app as draining (:meth:`drain`)."""
        async def wait() -> None:
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            for name in ("SIGINT", "SIGTERM"):
                loop.add_signal_handler(getattr(signal, name), stop.set)
            await stop.wait()
            self.drain()

        return wait

    def stop(self, shutdown_timeout: float | None = None) -> None:
        """Stop a server started with ``run(daemon=True)``."""
        if self._server_loop is None or self._server_thread is None or self._server_stop is None:
            return
        self._server_loop.call_soon_threadsafe(self._server_stop.set)
        self._server_thread.join(shutdown_timeout or self.up.conf.timeout_for_shutdown_daemon + 5)
        self._server_thread = None
        self._server_loop = None


def catch_alls_last(routes: list[BaseRoute]) -> list[BaseRoute]:
    """``routes`` with the catch-alls moved after every other route, each group in its order.

    Starlette tries routes in order, and plugins' routes come in the order pluggy calls them.
    A catch-all (a ``Route`` whose path has a ``{name:path}`` parameter, such as the V2
    protocol's 404 for any other path under ``/v2``) placed before another plugin's route would
    answer its requests; after, it answers only what no other route does.
    """
    catch_all = [isinstance(route, Route) and ":path}" in route.path for route in routes]
    if not any(catch_all):
        return routes
    return ([route for route, last in zip(routes, catch_all) if not last]
            + [route for route, last in zip(routes, catch_all) if last])


def _freeze_heap() -> None:
    """Put what start-up made out of the garbage collector's reach (``gc.freeze``): the model,
    the app and the modules live as long as the server. A full collection walks every object
    it tracks: about 50,000 in a small ONNX model's process, some 25 ms, during which no request
    moves, and longer than a quick inline call's stall budget (:mod:`core.runner`), which a
    collection landing in one would interrupt and send to the pool. Frozen, they are skipped;
    what requests make is collected as before. :meth:`Web.shutdown` unfreezes them."""
    gc.collect()
    gc.freeze()


def _tracer(plugins: Plugins, service: Service) -> Tracer | None:
    """The tracer a ``register_tracer`` plugin returns for ``service``, or None; two plugins
    returning one is a :class:`ConfigError` naming both."""
    found: list[tuple[str, Tracer]] = []
    for impl in plugins.hook.register_tracer.get_hookimpls():
        tracer = cast("Tracer | None", impl.function(**{name: service for name in impl.argnames
                                                         if name == "service"}))
        if tracer is not None:
            found.append((impl.plugin_name, tracer))
    if len(found) > 1:
        names = ", ".join(sorted(plugins.describe(name) for name, _ in found))
        raise ConfigError(f"more than one plugin traces requests: {names}; keep one (uninstall the "
                          f"others, or choose the plugins to load with CORE_LOAD_PLUGINS)")
    return found[0][1] if found else None


# The names earlier versions exported from here, for code that imports them.
__all__ = ["CORE_ERRORS", "PREDICT_ID_HEADER", "CoreError", "ValidationError", "Web", "error_response",
           "new_predict_id"]
