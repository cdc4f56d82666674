"""``up.web``: the Starlette app that serves an analysed model, and running it under hypercorn.

Errors become HTTP responses in one place, :func:`error_response`: every
:class:`core.errors.RequestError` is a JSON body ``{"detail": [...], "predict_id": ...}`` with
its status; anything else raised while predicting is a JSON 500, never a plain-text one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from core import openapi
from core.components import Architecture
from core.errors import (
    BodyTooLarge,
    CoreError,
    InternalError,
    InvalidRequestBody,
    PredictTimeout,
    RequestError,
    ServiceUnavailable,
    TooManyRequests,
    ValidationError,
    WebAppLoadError,
)

if TYPE_CHECKING:
    from core.up import UP

logger = logging.getLogger("core")

PREDICT_ID_HEADER = "X-Predict-Id"
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    from core.transformers import to_jsonable

    converted = to_jsonable(value)
    if converted is value:
        return str(value)
    return converted


def dumps(data: Any) -> bytes:
    """Serialise with orjson; numpy arrays natively, anything odd through to_jsonable."""
    return orjson.dumps(data, default=_default, option=JSON_OPTIONS)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_response(error: RequestError, predict_id: str | None = None) -> JSONResponse:
    """The one mapping from a RequestError to an HTTP response."""
    body: dict[str, Any] = {"detail": error.details}
    headers = dict(error.headers)
    if predict_id is not None:
        body["predict_id"] = predict_id
        headers[PREDICT_ID_HEADER] = predict_id
    return JSONResponse(body, status_code=error.status_code, headers=headers)


class _PredictIds:
    """Random, unguessable ids (32 hex digits from ``os.urandom``): a long prediction's result
    is fetched by its id. The random bytes are read 4 KiB at a time (one system call per 256
    ids, not one per request) and never shared with a forked child."""

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0
        self._lock = threading.Lock()  # servers may run in several threads of one process
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._buffer, self._offset = b"", 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer, self._offset = os.urandom(4096), 0
            start = self._offset
            self._offset = start + 16
            return self._buffer[start:start + 16].hex()


new_predict_id = _PredictIds()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes.

    Reads the ASGI messages itself (a one-message body, the usual case, is returned as it
    came); raises :class:`starlette.requests.ClientDisconnect` if the client goes away.
    """
    return await receive_body(request.scope, request.receive, limit)


async def receive_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """:func:`read_body` for a plain ASGI app: the body of the request in ``scope``."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise BodyTooLarge(
                    f"the body is {value.decode()} bytes; the limit (max_body_size) is {limit}"
                )
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is over the limit (max_body_size) of {limit} bytes")
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


def parse_json(body: bytes) -> Any:
    if not body:
        raise InvalidRequestBody("the body is empty; send a JSON object", loc=["body"])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidRequestBody(f"invalid JSON: {error}", loc=["body"]) from None


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _AsgiEndpoint:
    """Wraps an ASGI callable so that Starlette's ``Route`` mounts it as it is (a function or
    method endpoint would be wrapped as ``endpoint(request) -> Response``)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class App(Starlette):
    """The Starlette app, plus FastAPI's ``add_api_route`` so pymlup-era code keeps working."""

    def add_api_route(self, path: str, endpoint: Any, methods: list[str] | None = None,
                      name: str | None = None) -> None:
        """Serve ``endpoint`` (sync or async, taking no argument or the request) at ``path``;
        a returned dict or list is sent as JSON."""
        import inspect

        wants_request = bool(inspect.signature(endpoint).parameters)

        async def route(request: Request) -> Response:
            result = endpoint(request) if wants_request else endpoint()
            if inspect.isawaitable(result):
                result = await result
            return result if isinstance(result, Response) else JSONResponse(result)

        self.add_route(path, route, methods=methods, name=name)


class Web:
    """The web side of :class:`core.UP`: ``load()`` builds :attr:`app`."""

    def __init__(self, up: UP) -> None:
        self.up = up
        self._app: App | None = None
        self.architecture: Architecture | None = None
        self.architecture_predict: Any = None  # set by load(); see _bind_architecture_hook
        self.active_predicts = 0
        self.accepting = True
        self.started = threading.Event()
        self._server_thread: threading.Thread | None = None
        self._server_loop: asyncio.AbstractEventLoop | None = None
        self._server_stop: asyncio.Event | None = None

    @property
    def loaded(self) -> bool:
        return self._app is not None

    @property
    def app(self) -> App:
        """The Starlette app; add your own routes to it (``up.web.app.add_route(...)``)."""
        if self._app is None:
            raise WebAppLoadError("the web app is not built; call up.web.load() first")
        return self._app

    # ------------------------------------------------------------------ building

    def load(self) -> None:
        """(Re)build the app from the loaded model and the current config."""
        if not self.up.ml.loaded or self.up.ml.interface is None:
            raise WebAppLoadError("the model is not loaded; call up.ml.load() before up.web.load()")
        from core.ml import build

        conf = self.up.conf
        cls = self.up.plugins.architectures.get(conf.mode)
        self.architecture = build("architecture", cls, {"up": self.up}, "mode")
        self._bind_architecture_hook()
        routes: list[BaseRoute] = [  # /predict first: Starlette tries routes in order
            Route("/predict", _AsgiEndpoint(self.predict), methods=["POST"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/info", self.info, methods=["GET"]),
        ]
        if conf.show_docs:
            routes += [
                Route("/openapi.json", self.openapi, methods=["GET"], include_in_schema=False),
                Route("/docs", self.docs, methods=["GET"], include_in_schema=False),
            ]
        assert self.architecture is not None
        routes += self.architecture.routes()
        for extra in self.up.plugins.hook.register_routes(up=self.up):
            routes += extra or []
        self._app = App(
            debug=conf.debug,
            routes=routes,
            lifespan=self._lifespan,
            exception_handlers={HTTPException: self._http_error, Exception: self._server_error},
        )
        self._openapi = openapi.document(self.up)

    def _bind_architecture_hook(self) -> None:
        """``architecture_predict`` as a plain callable for the request path
        (:meth:`core.plugins.Plugins.request_path_call`)."""
        architecture = self.architecture
        assert architecture is not None
        self.architecture_predict = self.up.plugins.request_path_call(
            "architecture_predict", "architecture", architecture, architecture.predict,
            "data", "predict_id",
        )

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    async def startup(self) -> None:
        assert self.architecture is not None
        self.accepting = True
        await self.architecture.start()
        self.started.set()

    async def shutdown(self) -> None:
        self.accepting = False
        if self.architecture is not None:
            await self.architecture.stop(self.up.conf.timeout_for_shutdown_daemon)
        self.started.clear()

    # ------------------------------------------------------------------ endpoints

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": self.up.conf.name, "version": self.up.conf.version})

    async def info(self, request: Request) -> Response:
        return JSONResponse(self.up.info())

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self._openapi)

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(openapi.SWAGGER_HTML.replace("{title}", self.up.conf.name))

    async def predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /predict``, a plain ASGI app (no Request object or response wrapper on the
        hottest path): every answer, errors included, is JSON with the ``X-Predict-Id``."""
        predict_id = new_predict_id()
        outcome = await self._predict(scope, receive, predict_id)
        if isinstance(outcome, Response):  # an error, or an architecture's own response
            outcome.headers[PREDICT_ID_HEADER] = predict_id
            await outcome(scope, receive, send)
            return
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(outcome)).encode()),
                (b"x-predict-id", predict_id.encode()),
            ],
        })
        await send({"type": "http.response.body", "body": outcome})

    async def _predict(self, scope: Scope, receive: Receive, predict_id: str) -> bytes | Response:
        """The JSON body of a successful prediction, or the response to send instead."""
        conf = self.up.conf
        limit = conf.throttling_max_requests
        if limit is not None and self.active_predicts >= limit:
            return error_response(
                TooManyRequests(f"{self.active_predicts} predictions are running; the limit "
                                f"(throttling_max_requests) is {limit}", headers={"Retry-After": "1"}),
                predict_id,
            )
        self.active_predicts += 1
        try:
            if not self.accepting:
                raise ServiceUnavailable("the server is shutting down", headers={"Retry-After": "1"})
            body = parse_json(await receive_body(scope, receive, conf.max_body_size))
            data = self.up.ml.validate(body)
            self.check_request_len(data)
            pending = self.architecture_predict(data, predict_id)
            if conf.predict_timeout is None:
                result = await pending
            else:
                try:
                    result = await asyncio.wait_for(pending, conf.predict_timeout)
                except asyncio.TimeoutError:
                    raise PredictTimeout(
                        f"the prediction did not finish in predict_timeout = "
                        f"{conf.predict_timeout:g} s"
                    ) from None
            if isinstance(result, Response):
                return result
            return dumps({"predict_result": result})
        except RequestError as error:
            return error_response(error, predict_id)
        except ClientDisconnect:  # nobody is left to read an answer
            logger.info("predict id %s: the client disconnected before sending its body",
                        predict_id)
            return error_response(InvalidRequestBody("the client disconnected"), predict_id)
        except asyncio.CancelledError:
            # The server gave up on this request: hypercorn cancels the requests still running
            # when its graceful_timeout ends after SIGTERM. Answer while the connection is open.
            uncancel = getattr(asyncio.current_task(), "uncancel", None)  # Python 3.11+
            if uncancel is not None:
                uncancel()
            return error_response(
                ServiceUnavailable(
                    "the server is shutting down and could not finish this prediction in its "
                    "grace period (hypercorn --graceful-timeout); send it again",
                    headers={"Retry-After": "1"},
                ),
                predict_id,
            )
        except Exception as error:  # a bug in a plugin: still JSON, still the predict id
            logger.exception("unexpected error while predicting (predict id %s)", predict_id)
            return error_response(InternalError(f"{type(error).__name__}: {error}"), predict_id)
        finally:
            self.active_predicts -= 1

    def check_request_len(self, data: dict[str, Any]) -> None:
        limit = self.up.conf.throttling_max_request_len
        if limit is None:
            return
        count = self.up.ml.row_count(data)
        if count is not None and count > limit:
            rows = self.up.ml._ready().rows
            assert rows is not None
            raise TooManyRequests(
                f"{rows.name} has {count} rows; the limit (throttling_max_request_len) is {limit}",
                loc=["body", rows.name],
            )

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
            asyncio.run(serve(self.app, self.hypercorn_config()))  # type: ignore[arg-type]
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

    def stop(self, shutdown_timeout: float | None = None) -> None:
        """Stop a server started with ``run(daemon=True)``."""
        if self._server_loop is None or self._server_thread is None or self._server_stop is None:
            return
        self._server_loop.call_soon_threadsafe(self._server_stop.set)
        self._server_thread.join(shutdown_timeout or self.up.conf.timeout_for_shutdown_daemon + 5)
        self._server_thread = None
        self._server_loop = None


__all__ = ["PREDICT_ID_HEADER", "CoreError", "ValidationError", "Web", "error_response"]
