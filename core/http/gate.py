"""The admission gate: the one door every route that runs a model goes through.

core's ``POST /predict``, the V2 protocol's ``infer``, the MLComponent routes and the routes a
user adds are all :class:`Gate` endpoints (``gate.route(path, handler)``). For each request the
gate, in this order:

1. gives it a predict id (``X-Predict-Id`` on every answer, errors included): the client's
   ``X-Request-Id`` when it sends a valid one (echoed; 400 for an invalid one), else a new
   one (:mod:`core.http.ids`); every line logged while the request is handled carries it
   (:data:`core.logs.PREDICT_ID`);
2. refuses it with 503 once the server has stopped accepting (end of a graceful shutdown);
3. checks its ``Content-Type`` against what the route takes (415);
4. reads its body under ``max_body_size`` and ``body_timeout``, whatever way it comes
   (:mod:`core.http.body`: 413, 408, 415 for an unknown encoding, 400 for a corrupt one); a
   refusal in 3 or 4 leaves the body unread, so its answer closes the connection;
5. only then takes a prediction slot (``throttling_max_requests``, 429 with ``Retry-After``), so
   a slow body holds no slot;
6. runs the route's handler, which parses the body (:meth:`Admission.parse` reads a large one
   in another process, so that no parse holds the GIL, and with it the event loop, for long)
   and predicts through :meth:`Admission.predict`: the row limit
   (``throttling_max_request_len``, 429), the architecture, and ``predict_timeout`` (504);
7. writes the answer, or turns whatever was raised into the route's error format
   (:class:`core.http.responses.ErrorFormat`), in one place: an expected error (a
   :class:`core.errors.RequestError`, or a Starlette ``HTTPException`` with its status) is one
   log line at most, never a traceback; an unexpected one is a JSON 500 logged with its
   traceback; work cancelled by the server's shutdown is answered 503.

While the server drains (after SIGTERM) every answer carries ``Connection: close``, so a client
does not send another request on a connection that is about to close.

With a tracing plugin (:mod:`core.tracing`, :attr:`Gate.tracer`), the gate starts the
request's trace when it arrives, records its ``read``, ``validate`` and ``respond`` phases and
ends it with the status answered; without one it does no tracing work at all.

Once the request is answered, the gate counts it (:mod:`core.metrics`: ``core_requests_total``,
``core_request_duration_seconds``, ``core_predict_rows``, ``core_rejected_total``, with the
route's path template as ``route``) and writes its access line (:func:`core.logs.log_access`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from threading import get_ident
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.components import Deferred
from core.errors import (
    InternalError,
    PredictTimeout,
    RequestError,
    ServiceUnavailable,
    TooManyRequests,
)
from core.http.body import ClientGone, MediaTypes, Receive, read_body, timed_out
from core.http.headers import RequestHeaders
from core.http.ids import REQUEST_ID_HEADER, new_predict_id, request_id
from core.http.parser_process import ParserProcess, ParserProcessError
from core.http.responses import CORE_ERRORS, JSON_TYPE, PREDICT_ID_HEADER, ErrorFormat, HTTPError, dumps
from core.logs import PREDICT_ID, TRACE_ID, log_access
from core.tracing import TRACE

if TYPE_CHECKING:
    from contextvars import Token

    from core.metrics import Metrics, RouteMetrics
    from core.tracing import RequestTrace, Tracer

logger = logging.getLogger("core")

T = TypeVar("T")
Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
#: ``predict(data, predict_id)``: the architecture, through the ``architecture_predict`` hook.
PredictCall = Callable[[dict[str, Any], str], Awaitable[Any]]
Handler = Callable[["Admission"], Awaitable[Any]]

#: What a JSON route takes: JSON (``application/*+json`` too), or no ``Content-Type`` at all.
JSON_BODIES = ("application/json", "")
#: Bodies larger than this are parsed off the event loop (:meth:`Admission.parse`).
OFFLOAD_BYTES = 256 * 1024
#: Methods whose requests carry a body that the gate reads.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
RETRY_AFTER = "1"
#: The status counted and logged for a request whose client left before it was answered.
CLIENT_GONE = 499


@attrs.frozen
class Limits:
    """The gate's settings (config keys of the same names); ``None`` is no limit."""

    max_body_size: int = 32 * 1024 * 1024
    body_timeout: float = 30.0
    throttling_max_requests: int | None = None
    throttling_max_request_len: int | None = None
    predict_timeout: float | None = None

    @classmethod
    def from_config(cls, conf: Any) -> Limits:
        return cls(**{field.name: getattr(conf, field.name) for field in attrs.fields(cls)})


class Gate:
    """Admits requests to the model: see the module docstring for what it checks, in order.

    :param limits: the limits to hold.
    :param predict: runs one validated request: ``await predict(data, predict_id)``.
    :param row_count: how many rows a validated request holds (None: no rows argument).
    :param rows_name: the rows argument's name, for messages.
    :param metrics: where requests are counted (None: ``metrics = false``).
    :param access_log: write an access line per request (``access_log``).
    :param request_ids: take a client's ``X-Request-Id`` as the predict id (False with long
        predictions, whose ids must not be guessable: the id is echoed only).
    """

    def __init__(self, limits: Limits, predict: PredictCall,
                 row_count: Callable[[dict[str, Any]], int | None] = lambda data: None,
                 rows_name: str | None = None, *, metrics: Metrics | None = None,
                 access_log: bool = False, request_ids: bool = True) -> None:
        self.limits = limits
        self._predict = predict
        self._row_count = row_count
        self._rows_name = rows_name
        self.metrics = metrics
        self.access_log = access_log
        self.request_ids = request_ids
        #: Requests holding a prediction slot now.
        self.active = 0
        #: Set when a graceful shutdown begins: answers close their connection.
        self.draining = False
        #: Cleared when the grace period ends: new requests are answered 503.
        self.accepting = True
        #: Requests answered 503 because the server shut down before they finished.
        self.cancelled = 0
        #: Traces each request (a ``register_tracer`` plugin, :mod:`core.tracing`); None: no tracing.
        self.tracer: Tracer | None = None
        self._parser = ParserProcess()
        self._bodies = BodyDeadlines(limits.body_timeout)

    # ------------------------------------------------------------------ large bodies

    async def offload(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` in the gate's parser process (:mod:`core.http.parser_process`,
        started on first use): a parse there holds no GIL of this process, so the event loop
        keeps answering. If the process cannot be had, or dies, the call runs in a thread."""
        try:
            return await self._parser.call(call, *args)
        except ParserProcessError as error:
            logger.warning("a large body is parsed in a thread: %s", error)
        return await asyncio.get_running_loop().run_in_executor(
            None, contextvars.copy_context().run, call, *args)

    def close(self) -> None:
        """Stop the parser process (server shutdown)."""
        self._parser.close()

    # ------------------------------------------------------------------ building routes

    def endpoint(self, handler: Handler, *, accepts: Sequence[str] | None = JSON_BODIES,
                 errors: ErrorFormat = CORE_ERRORS, predicts: bool = True,
                 timeout: float | None = None, route: str | None = None) -> GatedEndpoint:
        """An ASGI app that admits each request, then awaits ``handler(admission)``.

        :param handler: the route's work; it returns the answer: ``bytes`` (a JSON body), a
            Starlette ``Response``, a :class:`core.components.Deferred` (202 with the predict
            id), or anything :func:`core.http.dumps` serialises.
        :param accepts: the media types the route's body may have (see
            :func:`core.http.body.takes`); ``None`` takes any.
        :param errors: how errors are written (default: core's format).
        :param predicts: whether a request takes a prediction slot (``throttling_max_requests``)
            once its body is read.
        :param timeout: seconds the whole handler may take (504 past them), for routes that do
            not predict through :meth:`Admission.predict`.
        :param route: the path template it is mounted at, as metrics and the access line name
            it (default: found from the router at the first request).
        """
        return GatedEndpoint(self, handler, None if accepts is None else MediaTypes(tuple(accepts)),
                             errors, predicts, timeout, route)

    def route(self, path: str, handler: Handler, *, methods: Sequence[str] = ("POST",),
              name: str | None = None, **options: Any) -> Route:
        """A Starlette route serving ``handler`` behind the gate (``options`` as for
        :meth:`endpoint`)."""
        return Route(path, self.endpoint(handler, route=path, **options), methods=list(methods), name=name)

    # ------------------------------------------------------------------ slots

    def take(self) -> None:
        """Take a prediction slot, or raise 429."""
        limit = self.limits.throttling_max_requests
        if limit is not None and self.active >= limit:
            raise TooManyRequests(
                f"{self.active} predictions are running; the limit (throttling_max_requests) "
                f"is {limit}", headers={"Retry-After": RETRY_AFTER},
            )
        self.active += 1

    def release(self) -> None:
        self.active -= 1

    @property
    def saturated(self) -> bool:
        """Whether a new prediction would be refused 429 now."""
        limit = self.limits.throttling_max_requests
        return limit is not None and self.active >= limit

    # ------------------------------------------------------------------ deadlines

    async def deadline(self, awaitable: Awaitable[T], seconds: float,
                       error: Callable[[], RequestError]) -> T:
        """``await awaitable``, or raise ``error()`` after ``seconds`` (the awaitable is
        cancelled). One timer, no extra task: cheap enough for every request."""
        task = asyncio.current_task()
        assert task is not None
        fired = False

        def expire() -> None:
            nonlocal fired
            fired = True
            task.cancel()

        handle = asyncio.get_running_loop().call_later(seconds, expire)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not fired:
                raise
            _uncancel(task)
            raise error() from None
        finally:
            handle.cancel()

    def read(self, headers: RequestHeaders, receive: Receive,
             accepts: MediaTypes | None = None) -> Awaitable[bytes]:
        """``await gate.read(...)``: the body of the request whose ``headers`` these are, of a
        ``Content-Type`` that ``accepts`` takes (None: any), within ``max_body_size`` and
        ``body_timeout``.

        An error raised here (by the call or by the await) leaves the rest of the body unread:
        its answer must close the connection (``Connection: close``), as the server cannot
        read the next request after it; :class:`GatedEndpoint` marks it so.
        """
        if accepts is not None:
            accepts.check(headers.content_type)
        return self._bodies.watch(read_body(receive, self.limits.max_body_size, headers))

    def check_rows(self, data: dict[str, Any]) -> int | None:
        """How many rows ``data`` holds (None: no rows argument); raise 429 when that is more
        than ``throttling_max_request_len``."""
        count = self._row_count(data)
        limit = self.limits.throttling_max_request_len
        if limit is not None and count is not None and count > limit:
            name = self._rows_name or "the request"
            error = TooManyRequests(
                f"{name} has {count} rows; the limit (throttling_max_request_len) is {limit}",
                loc=["body", self._rows_name] if self._rows_name else ["body"],
            )
            error.reason = "throttling_max_request_len"
            raise error
        return count


class BodyDeadlines:
    """``body_timeout`` for every body being read, with one timer for them all.

    A timer per request (``loop.call_later`` and its ``cancel``) costs a heap push and a
    handle to clean up for every request, although almost no body is ever late. Here a body
    being read is an entry in a dict, in arrival order; as every body has the same time
    limit, the first entry is always the next to expire, and one timer, set for it, is all
    it takes. When the timer fires, the bodies past their deadline are cancelled (each read
    raises 408) and the timer is set for the first one left. Under steady traffic it fires
    about once per ``body_timeout``.

    :param seconds: the time limit (``body_timeout``).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        #: The tasks reading a body now, and when their time runs out (``loop.time()``).
        self._reading: dict[asyncio.Task[Any], float] = {}
        #: Tasks cancelled because their time ran out (not by anything else).
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None  # where self._loop runs

    async def watch(self, reading: Awaitable[T]) -> T:
        """``await reading``, or raise 408 (:func:`core.http.body.timed_out`) once the
        request's time is up (the read is cancelled)."""
        # The loop of the last read, if it runs in this thread, is the running one: asking it
        # for the current task spares asyncio.get_running_loop(), a system call (getpid) each.
        loop = self._loop
        task = asyncio.current_task(loop) if loop is not None and get_ident() == self._thread else None
        if task is None:  # the first read, or the app runs in a new event loop (a test's, a restart)
            task = asyncio.current_task()
            assert task is not None
            if task.get_loop() is not loop:
                loop = task.get_loop()
                self._reading.clear()
                self._expired.clear()
                self._loop, self._timer, self._thread = loop, None, get_ident()
        assert loop is not None
        deadline = self._reading[task] = loop.time() + self.seconds
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire)
        try:
            return await reading
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            _uncancel(task)
            raise timed_out(self.seconds) from None
        finally:
            self._reading.pop(task, None)
            self._expired.discard(task)

    def _expire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        reading = self._reading
        while reading:
            task, deadline = next(iter(reading.items()))
            if deadline > now:
                self._timer = loop.call_at(deadline, self._expire)
                return
            del reading[task]
            self._expired.add(task)
            task.cancel()
        self._timer = None


class Admission:
    """One admitted request, handed to a route's handler.

    :ivar predict_id: the request's id (sent back as ``X-Predict-Id``).
    :ivar request_id: the client's ``X-Request-Id`` (sent back), or None.
    :ivar body: the whole body, decoded and within the limits (``b""`` for a GET).
    :ivar scope: the ASGI scope.
    :ivar rows: the rows :meth:`predict` was given (None before, or without a rows argument).
    :ivar status: the status of the answer sent (``499`` until one is).
    :ivar trace: the request's trace (:mod:`core.tracing`), or None.
    """

    __slots__ = ("_request", "body", "gate", "headers", "phase_ns", "predict_id", "receive", "request_id",
                 "rows", "scope", "status", "trace")

    def __init__(self, gate: Gate, scope: Scope, receive: Receive, predict_id: str,
                 request_id: str | None = None, headers: RequestHeaders | None = None) -> None:
        self.gate = gate
        #: The headers the gate reads (:class:`core.http.headers.RequestHeaders`).
        self.headers = headers if headers is not None else RequestHeaders(scope)
        self.scope = scope
        self.receive = receive
        self.predict_id = predict_id
        self.request_id = request_id
        self.body = b""
        self.rows: int | None = None
        self.status = CLIENT_GONE
        self._request: Request | None = None
        self.trace: RequestTrace | None = None
        #: (traced only) when the last phase the gate recorded ended.
        self.phase_ns: int

    @property
    def request(self) -> Request:
        """The Starlette request: headers, path and query parameters; ``await
        request.body()`` and ``await request.form()`` read :attr:`body`, already here."""
        if self._request is None:
            request = Request(self.scope, self.receive)
            request._body = self.body  # read by the gate: the request must not read it again
            self._request = request
        return self._request

    async def parse(self, parse: Callable[..., T], *args: Any,
                    large: Callable[..., T] | None = None) -> T:
        """``parse(body, *args)`` here for a small body. A large one (over
        :data:`OFFLOAD_BYTES`) is read off the event loop: by ``large(body, *args)`` in the
        gate's parser process when given (it and ``args`` must pickle: a module-level function
        or a picklable object's method), else by ``parse`` in a thread (which frees the loop
        between Python instructions, not during one long C call such as a JSON parse)."""
        if len(self.body) <= OFFLOAD_BYTES:
            return parse(self.body, *args)
        if large is not None:
            return await self.gate.offload(large, self.body, *args)
        return await asyncio.get_running_loop().run_in_executor(
            None, contextvars.copy_context().run, parse, self.body, *args)

    async def form(self, *, max_files: int = 1000, max_fields: int = 1000) -> Any:
        """The multipart or urlencoded form in :attr:`body` (its parts are within the limit
        the body was read under). Close it with ``await form.close()``."""
        return await self.request.form(max_files=max_files, max_fields=max_fields,
                                       max_part_size=self.gate.limits.max_body_size)

    def predict(self, data: dict[str, Any]) -> Awaitable[Any]:
        """``await admission.predict(data)``: run validated ``data`` through the architecture:
        the row limit, then ``predict_timeout``. Gives the JSON-ready result or a
        :class:`core.components.Deferred`."""
        gate = self.gate
        self.rows = gate.check_rows(data)
        if self.trace is not None:
            self.phase_ns = _phase(self.trace, "validate", self.phase_ns)
        pending = gate._predict(data, self.predict_id)
        timeout = gate.limits.predict_timeout
        if timeout is None:
            return pending
        return gate.deadline(pending, timeout, lambda: PredictTimeout(
            f"the prediction did not finish in predict_timeout = {timeout:g} s"))


class GatedEndpoint:
    """The ASGI app :meth:`Gate.endpoint` returns (Starlette's ``Route`` mounts it as it is)."""

    def __init__(self, gate: Gate, handler: Handler, accepts: MediaTypes | None,
                 errors: ErrorFormat, predicts: bool, timeout: float | None,
                 route: str | None = None) -> None:
        self.gate = gate
        self.handler = handler
        self.accepts = accepts
        self.errors = errors
        self.predicts = predicts
        self.timeout = timeout
        self.route = route
        self._metrics: RouteMetrics | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        gate = self.gate
        headers = RequestHeaders(scope)
        refusal: RequestError | None = None
        client_id = None
        if headers.request_id is not None:
            try:
                client_id = request_id(headers.request_id)
            except RequestError as error:
                refusal = error
        predict_id = client_id if client_id is not None and gate.request_ids else new_predict_id()
        admission = Admission(gate, scope, receive, predict_id, client_id, headers)
        token = PREDICT_ID.set(predict_id)
        traced = None if gate.tracer is None else self._start_trace(gate.tracer, admission)
        metrics = gate.metrics
        if metrics is not None:
            metrics.in_flight_now += 1
        try:
            if refusal is None:
                await self._serve(send, admission)
            else:
                refusal.headers = {**refusal.headers, "Connection": "close"}  # its body is unread
                await self._send_error(send, admission, refusal)
        finally:
            if metrics is not None:
                metrics.in_flight_now -= 1
            self._report(admission, time.perf_counter() - started)
            if traced is not None:
                self._end_trace(admission, traced)
            PREDICT_ID.reset(token)

    def _start_trace(self, tracer: Tracer, admission: Admission) -> tuple[Token[Any], Token[Any]] | None:
        """Begin the request's trace and make it the current one (:data:`core.tracing.TRACE`)."""
        scope = admission.scope
        now = time.time_ns()
        try:
            trace = tracer.start(scope["method"], self.route or self._find_route(scope),
                                 admission.predict_id, scope["headers"], now)
        except Exception:  # a tracer's bug does not fail the request
            logger.exception("the tracer failed to start the trace of predict id %s", admission.predict_id)
            return None
        admission.trace = trace
        admission.phase_ns = now
        return TRACE.set(trace), TRACE_ID.set(trace.trace_id)

    @staticmethod
    def _end_trace(admission: Admission, tokens: tuple[Token[Any], Token[Any]]) -> None:
        assert admission.trace is not None
        try:
            admission.trace.end(admission.status, time.time_ns())
        except Exception:
            logger.exception("the tracer failed to end the trace of predict id %s", admission.predict_id)
        TRACE_ID.reset(tokens[1])
        TRACE.reset(tokens[0])

    async def _serve(self, send: Send, admission: Admission) -> None:
        """Admit the request (module docstring, steps 2-6), run its handler and answer."""
        gate = self.gate
        try:
            if not gate.accepting:
                raise ServiceUnavailable("the server is shutting down", headers={"Retry-After": RETRY_AFTER})
            if admission.scope["method"] in BODY_METHODS:
                try:
                    admission.body = await gate.read(admission.headers, admission.receive, self.accepts)
                except RequestError as error:  # the body is left unread: close the connection
                    error.headers = {**error.headers, "Connection": "close"}
                    raise
                finally:  # refused (413, 408...) or not
                    if admission.trace is not None:
                        admission.phase_ns = _phase(admission.trace, "read", admission.phase_ns)
            if not self.predicts:
                outcome = await self._handle(admission)
            else:
                gate.take()
                try:
                    outcome = await self._handle(admission)
                finally:
                    gate.release()
            if not isinstance(outcome, (bytes, Response, Deferred)):
                outcome = dumps(outcome)  # here, so that a result JSON cannot carry is mapped too
        except RequestError as error:
            await self._send_error(send, admission, error)
            return
        except HTTPException as error:  # a handler refusing the way Starlette users do
            await self._send_error(send, admission, HTTPError(error))
            return
        except ClientGone:  # nobody is left to answer
            logger.info("predict id %s: the client disconnected before its body was complete",
                        admission.predict_id)
            return
        except asyncio.CancelledError:  # the server gave up on this request (shutdown)
            _uncancel(asyncio.current_task())
            gate.cancelled += 1
            await self._send_error(send, admission, ServiceUnavailable(
                "the server is shutting down and could not finish this request in its grace "
                "period; send it again", headers={"Retry-After": RETRY_AFTER}), close=True)
            return
        except Exception as error:  # a bug in core, a plugin or a route: still JSON
            logger.exception("unexpected error serving %s (predict id %s)", admission.scope.get("path"),
                             admission.predict_id)
            await self._send_error(send, admission, InternalError(f"{type(error).__name__}: {error}"))
            return
        if type(outcome) is bytes:  # the usual answer: a JSON body
            await self._write(send, admission, 200, outcome, (), gate.draining)
        else:
            await self._send(send, admission, outcome)

    def _report(self, admission: Admission, seconds: float) -> None:
        """Count the answered request and write its access line."""
        gate = self.gate
        if gate.metrics is None and not gate.access_log:
            return
        route = self.route or self._find_route(admission.scope)
        method = admission.scope["method"]
        if gate.metrics is not None:
            if self._metrics is None:
                self._metrics = gate.metrics.route(route)
            self._metrics.answered(method, admission.status, seconds, admission.rows)
        if gate.access_log:
            log_access(method, route, admission.status, seconds, admission.rows,
                       admission.request_id if admission.request_id != admission.predict_id else None)

    def _find_route(self, scope: Scope) -> str:
        """The path template of the route this endpoint is mounted at (for an endpoint made
        with :meth:`Gate.endpoint` without ``route``); the raw path never labels a metric."""
        router = scope.get("router")
        for candidate in getattr(router, "routes", ()):
            if getattr(candidate, "app", None) is self or getattr(candidate, "endpoint", None) is self:
                self.route = str(candidate.path)
                return self.route
        self.route = "unknown"
        return self.route

    def _handle(self, admission: Admission) -> Awaitable[Any]:
        if self.timeout is None:
            return self.handler(admission)
        seconds = self.timeout
        return self.gate.deadline(self.handler(admission), seconds, lambda: PredictTimeout(
            f"the request did not finish in predict_timeout = {seconds:g} s"))

    async def _send(self, send: Send, admission: Admission, outcome: Any) -> None:
        if isinstance(outcome, Response):
            outcome.headers[PREDICT_ID_HEADER] = admission.predict_id
            if admission.request_id is not None:
                outcome.headers[REQUEST_ID_HEADER] = admission.request_id
            if self.gate.draining:
                outcome.headers["connection"] = "close"
            admission.status = outcome.status_code
            began = 0 if admission.trace is None else time.time_ns()
            await outcome(admission.scope, admission.receive, send)
            if admission.trace is not None:
                _phase(admission.trace, "respond", began)
            return
        if isinstance(outcome, Deferred):
            await self._write(send, admission, 202, dumps({"predict_id": outcome.predict_id}), (),
                              self.gate.draining)
            return
        await self._write(send, admission, 200, outcome, (), self.gate.draining)

    async def _send_error(self, send: Send, admission: Admission, error: RequestError,
                          close: bool = False) -> None:
        if error.status_code < 500:
            logger.debug("predict id %s: %s %s", admission.predict_id, error.status_code, error.msg)
        if error.reason is not None and self.gate.metrics is not None:
            self.gate.metrics.rejected_for(error.reason)
        status, body = self.errors.render(error, admission.predict_id)
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()
                   if k.lower() != "connection"]
        # an error whose body was left unread (_serve) cannot keep its connection
        close = close or self.gate.draining or error.headers.get("Connection") == "close"
        await self._write(send, admission, status, body, headers, close)

    @staticmethod
    async def _write(send: Send, admission: Admission, status: int, body: bytes,
                     extra: Sequence[tuple[bytes, bytes]], close: bool) -> None:
        headers = [
            (b"content-type", JSON_TYPE),
            (b"content-length", str(len(body)).encode()),
            (b"x-predict-id", admission.predict_id.encode()),
            *extra,
        ]
        if admission.request_id is not None:
            headers.append((b"x-request-id", admission.request_id.encode()))
        if close:
            headers.append((b"connection", b"close"))
        admission.status = status
        began = 0 if admission.trace is None else time.time_ns()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        if admission.trace is not None:
            _phase(admission.trace, "respond", began)


def _phase(trace: RequestTrace, name: str, start_ns: int) -> int:
    """Record phase ``name`` of ``trace``, from ``start_ns`` to now; returns now."""
    now = time.time_ns()
    trace.phase(name, start_ns, now)
    return now


def _uncancel(task: asyncio.Task[Any] | None) -> None:
    """Forget a cancellation that was answered (Python 3.11+ counts them)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()
