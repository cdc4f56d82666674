"""Prometheus metrics: ``GET /metrics`` (or ``metrics_port``), right with several processes.

The metrics (``prometheus_client``; names fixed, so that dashboards can rely on them):

=======================================================  ==========  ======================================
``core_requests_total{route, method, status}``           counter     requests answered by a route that runs
                                                                     the model (``route`` is the template,
                                                                     ``/v2/models/{name}/infer``)
``core_request_duration_seconds{route}``                 histogram   from the request's arrival to its
                                                                     answer's last byte
``core_predict_duration_seconds{architecture}``          histogram   the model call alone
``core_predict_rows``                                    histogram   rows per request
``core_batch_rows``                                      histogram   rows per model call (``batching``)
``core_queue_depth``, ``core_in_flight``                 gauges      requests waiting in the architecture's
                                                                     queue; requests being handled
``core_rejected_total{reason}``                          counter     429, 413, 408, 503 by reason (the
                                                                     setting that refused)
``core_model_info{name, version, binarizer, storage}``   gauge (1)   what is served
``core_model_load_seconds``                              gauge       how long the model took to load
=======================================================  ==========  ======================================

**Several processes.** Each worker process counts its own requests, so ``/metrics`` must add up
every worker's: in *multiprocess mode* (prometheus_client's) each process writes its values to
files in a shared directory, and the process that answers a scrape reads them all. core
manages that directory:

* ``core serve --workers N``: the supervisor creates a new one at each start (or empties the
  one ``PROMETHEUS_MULTIPROC_DIR`` names), sets ``PROMETHEUS_MULTIPROC_DIR`` before it starts
  the workers, marks a dead worker's gauges dead (``mark_process_dead``) when it replaces it,
  and removes the directory it created when it stops. A dead worker's counts are kept: counters
  never go back;
* ``hypercorn --workers N core.app:app``: each worker uses ``PROMETHEUS_MULTIPROC_DIR`` when set
  (then empty it before each start), else a directory named after the hypercorn process and its
  start time (``core-metrics-<pid>-<start>`` in the temporary directory), new for each start;
  those of hypercorn processes that are gone are removed;
* one process (``core serve``, ``hypercorn core.app:app`` with its one worker, ``--workers
  0``, ``up.run_web_app()``): no files, the values are in memory (writing to the files costs
  a few microseconds a value).

**What a request costs.** prometheus_client's ``inc`` and ``observe`` take a lock, check the
metric and walk the buckets in Python: a dozen of them per request cost about a tenth of a
small model's whole request. So the request path only appends what it saw to a queue (a
``deque.append``: atomic, from any thread), and :meth:`Metrics.flush` folds the queues into the
prometheus_client metrics: at each scrape (``/metrics`` and ``metrics_port``, so a scrape of
one process is exact), and every :data:`FLUSH_SECONDS` from the event loop (so that the
files another worker reads in multiprocess mode are at most that old), and at shutdown.

Plugins add their own metrics through the ``register_metrics`` hook (:mod:`core.hookspecs`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import choose_encoder, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from core.errors import ConfigError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from core.config import Config

logger = logging.getLogger("core")

#: The variable naming prometheus_client's multiprocess directory.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The prefix of the directories core creates.
DIRECTORY_PREFIX = "core-metrics-"
#: Seconds, for request and model-call durations: from 0.5 ms (a small model) up.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0, 30.0, 60.0)
#: Rows per request or per model call.
ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000)
#: Seconds between two folds of what the request path saw into the metrics (see the module
#: docstring): the most a scrape answered by another worker lags behind.
FLUSH_SECONDS = 1.0


# ---------------------------------------------------------------------------- the directory


def multiprocess_directory() -> str | None:
    """The shared directory this process writes its values to, or None (one process: values
    in memory). Sets ``PROMETHEUS_MULTIPROC_DIR`` for a hypercorn worker that has none (see
    the module docstring)."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        parent = multiprocessing.parent_process()
        if parent is None or parent.pid is None or _lone_hypercorn_worker():
            return None
        path = _hypercorn_directory(parent.pid)
        os.environ[MULTIPROC_ENV] = path
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


def _lone_hypercorn_worker() -> bool:
    """Whether this process is the only worker of its hypercorn (``hypercorn core.app:app``
    runs one worker process by default): then no other process counts requests, and values in
    memory are cheaper than files. hypercorn hands its config to the worker as the argument of
    the process's target, which multiprocessing keeps on the process object; anything else
    than a hypercorn config saying ``workers = 1`` counts as several workers (files: always
    right, slower)."""
    config = (getattr(multiprocessing.current_process(), "_kwargs", None) or {}).get("config")
    return type(config).__module__ == "hypercorn.config" and getattr(config, "workers", None) == 1


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, Linux), or "" when unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _hypercorn_directory(parent: int) -> str:
    """The directory shared by the workers of the hypercorn process ``parent``: new for each
    start of hypercorn. Those of hypercorn processes that are gone are removed."""
    base = Path(tempfile.gettempdir())
    gone = base.glob(f"{DIRECTORY_PREFIX}*-*") if Path("/proc/self").exists() else ()  # Linux
    for old in gone:
        pid = old.name[len(DIRECTORY_PREFIX):].split("-")[0]
        if pid.isdigit() and int(pid) != parent and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    return str(base / f"{DIRECTORY_PREFIX}{parent}-{_started(parent) or 'x'}")


class SharedDirectory:
    """The supervisor's multiprocess directory (``core serve --workers N``): created, or
    emptied when ``PROMETHEUS_MULTIPROC_DIR`` names one, and named in the environment before
    the workers start; :meth:`close` removes what it created."""

    def __init__(self) -> None:
        given = os.environ.get(MULTIPROC_ENV)
        if given:
            self.path = given
            self.created = False
            Path(given).mkdir(parents=True, exist_ok=True)
            for old in Path(given).glob("*.db"):
                old.unlink()
        else:
            self.path = tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{os.getpid()}-")
            self.created = True
            os.environ[MULTIPROC_ENV] = self.path

    def process_dead(self, pid: int) -> None:
        """A worker died: its gauges no longer count (its counters and histograms do)."""
        mark_process_dead(pid, self.path)

    def close(self) -> None:
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
            if os.environ.get(MULTIPROC_ENV) == self.path:
                del os.environ[MULTIPROC_ENV]


def _use_files() -> None:
    """Write this process's values to the multiprocess directory, also when prometheus_client
    was imported before the directory was named (it reads the variable at import)."""
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


def directory_registry(directory: str) -> CollectorRegistry:
    """A registry that reads the values every process wrote to ``directory``."""
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=directory)
    return merged


# ---------------------------------------------------------------------------- the metrics


def _take(queue: deque[Any], count: int) -> list[Any]:
    """The first ``count`` values of ``queue``, taken off it."""
    take = queue.popleft
    return [take() for _ in range(count)]


class Observations:
    """Observations of one histogram (or one labelled child of it), kept until :meth:`fold`
    adds them to it in one go: ``add(value)`` is a ``deque.append``, atomic and cheap from any
    thread.

    prometheus_client has no call that adds many observations at once, so :meth:`fold` adds to
    the histogram's bucket and sum values itself (``_buckets``, ``_sum``: the attributes its own
    ``observe`` adds to, which also write multiprocess mode's files); a test checks that the
    result is what ``observe`` would have given. The values are sorted into buckets by numpy,
    in one call for all of them.
    """

    __slots__ = ("_bounds", "_histogram", "_pending", "add")

    def __init__(self, histogram: Histogram) -> None:
        self._histogram: Any = histogram
        self._bounds = np.asarray(self._histogram._upper_bounds[:-1], dtype=float)  # the last is +Inf
        self._pending: deque[float] = deque()
        self.add: Callable[[float], None] = self._pending.append

    def fold(self) -> None:
        pending = self._pending
        count = len(pending)  # what is there now; later adds wait for the next fold
        if count:
            self.fold_values(np.fromiter(_take(pending, count), float, count))

    def fold_values(self, values: np.ndarray) -> None:
        """Add ``values`` (a float array) to the histogram."""
        if not values.size:
            return
        # searchsorted "left": the first bucket whose bound is >= the value, as observe() counts
        counts = np.bincount(np.searchsorted(self._bounds, values), minlength=len(self._bounds) + 1)
        histogram = self._histogram
        histogram._sum.inc(float(values.sum()))
        for bucket, added in zip(histogram._buckets, counts.tolist()):
            if added:
                bucket.inc(added)


class RouteMetrics:
    """The request metrics of one route: :meth:`answered` queues, :meth:`fold` counts.

    An answer is queued as four plain values, one deque each, not as one tuple: a tuple is an
    object the garbage collector tracks, and the second's worth of them waiting for the fold
    set off a collection every few hundred requests (and, promoted, a full one every few
    seconds), where the request path otherwise leaves nothing for it to collect.
    """

    __slots__ = ("_durations", "_methods", "_metrics", "_requests", "_rows", "_seconds", "_statuses",
                 "route")

    def __init__(self, metrics: Metrics, route: str) -> None:
        self._metrics = metrics
        self.route = route
        self._methods: deque[str] = deque()
        self._statuses: deque[int] = deque()
        self._seconds: deque[float] = deque()
        self._rows: deque[int | None] = deque()
        self._durations = Observations(metrics.request_duration.labels(route))
        self._requests: dict[tuple[str, int], Counter] = {}

    def answered(self, method: str, status: int, seconds: float, rows: int | None) -> None:
        """A request answered ``status`` after ``seconds``, that held ``rows`` rows."""
        self._methods.append(method)
        self._statuses.append(status)
        self._seconds.append(seconds)
        self._rows.append(rows)  # last: an answer whose rows are queued is queued whole

    def fold(self) -> None:
        count = len(self._rows)  # answers queued whole now (answered may run in another thread)
        if not count:
            return
        methods = _take(self._methods, count)
        for (method, status), added in collections.Counter(zip(methods, _take(self._statuses, count))).items():
            counter = self._requests.get((method, status))
            if counter is None:
                counter = self._requests[method, status] = self._metrics.requests.labels(
                    self.route, method, str(status))
            counter.inc(added)
        self._durations.fold_values(np.fromiter(_take(self._seconds, count), float, count))
        rows = np.array(_take(self._rows, count), dtype=float)  # None (no rows) is NaN
        self._metrics.rows_observed.fold_values(rows[~np.isnan(rows)])


class Metrics:
    """core's metrics for one served model (see the module docstring).

    :param conf: the settings (``mode`` labels the model-call durations).
    :param directory: the multiprocess directory, or None for values in memory.
    """

    def __init__(self, conf: Config, directory: str | None) -> None:
        self.directory = directory
        if directory is not None:
            _use_files()
        #: Where core's metrics (and the plugins', ``register_metrics``) are registered. In
        #: multiprocess mode it is not what a scrape reads: the values go through the files.
        self.registry = CollectorRegistry()
        #: What ``/metrics`` answers.
        self.exposed = self.registry if directory is None else directory_registry(directory)
        registry = self.registry
        self.requests = Counter("core_requests", "Requests answered by a route that runs the model.",
                                ["route", "method", "status"], registry=registry)
        self.request_duration = Histogram(
            "core_request_duration_seconds", "Seconds from a request's arrival to its answer's last byte.",
            ["route"], buckets=DURATION_BUCKETS, registry=registry)
        self.predict_duration = Histogram(
            "core_predict_duration_seconds", "Seconds the model call took (one call per batch in batching).",
            ["architecture"], buckets=DURATION_BUCKETS, registry=registry)
        self.predict_rows = Histogram("core_predict_rows", "Rows per request.", buckets=ROW_BUCKETS,
                                      registry=registry)
        self.batch_rows = Histogram("core_batch_rows", "Rows per model call in batching.",
                                    buckets=ROW_BUCKETS, registry=registry)
        self.queue_depth = Gauge("core_queue_depth", "Requests waiting in the architecture's queue.",
                                 multiprocess_mode="livesum", registry=registry)
        self.in_flight = Gauge("core_in_flight", "Requests being handled (admitted, not yet answered).",
                               multiprocess_mode="livesum", registry=registry)
        self.rejected = Counter("core_rejected", "Requests refused: 429, 413, 408, 503, by reason.",
                                ["reason"], registry=registry)
        self.model_info = Gauge("core_model_info", "The served model (always 1).",
                                ["name", "version", "binarizer", "storage"], multiprocess_mode="livemax",
                                registry=registry)
        self.model_load_seconds = Gauge("core_model_load_seconds", "Seconds the model took to load.",
                                        multiprocess_mode="livemax", registry=registry)
        #: Rows per request: the routes add theirs when they fold (:meth:`RouteMetrics.fold`).
        self.rows_observed = Observations(self.predict_rows)
        self._observed = [Observations(self.predict_duration.labels(conf.mode)),
                          self.rows_observed, Observations(self.batch_rows)]
        #: ``observe_predict(seconds)`` of a model call (any thread); ``observe_rows(rows)`` of
        #: a request; ``observe_batch_rows(rows)`` of a model call that merged requests.
        self.observe_predict, self.observe_rows, self.observe_batch_rows = (o.add for o in self._observed)
        #: Requests being handled now (``core_in_flight``): the admission gate counts them.
        self.in_flight_now = 0
        self._in_flight = -1
        self._queue_source: Callable[[], int] | None = None
        self._queue_depth = -1
        self._routes: dict[str, RouteMetrics] = {}
        self._flushing = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._server: WSGIServer | None = None
        #: What a scrape reads: the metrics, folded first.
        self.scraped = CollectorRegistry()
        self.scraped.register(_FoldFirst(self))

    def describe_model(self, name: str, version: str, binarizer: str | None, storage: str,
                       load_seconds: float | None) -> None:
        """Set ``core_model_info`` and ``core_model_load_seconds``."""
        self.model_info.labels(name, version, binarizer or "none", storage).set(1)
        if load_seconds is not None:
            self.model_load_seconds.set(load_seconds)

    def route(self, route: str) -> RouteMetrics:
        """The metrics of requests to ``route`` (a path template)."""
        found = self._routes.get(route)
        if found is None:
            found = self._routes[route] = RouteMetrics(self, route)
        return found

    def rejected_for(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Read ``core_queue_depth`` from ``depth()`` at each :meth:`flush`."""
        self._queue_source = depth
        self.flush()

    def flush(self) -> None:
        """Fold what the request path saw into the metrics, and set the gauges read from
        state (requests in flight, the queue depth). Any thread may call it."""
        with self._flushing:
            for route in list(self._routes.values()):
                route.fold()  # with the rows of its requests (core_predict_rows)
            for observed in self._observed:
                observed.fold()
            in_flight = self.in_flight_now
            if in_flight != self._in_flight:
                self._in_flight = in_flight
                self.in_flight.set(in_flight)
            source = self._queue_source
            if source is not None:
                depth = source()
                if depth != self._queue_depth:
                    self._queue_depth = depth
                    self.queue_depth.set(depth)

    def start(self) -> None:
        """Flush every :data:`FLUSH_SECONDS` from the running event loop (server start)."""
        loop = asyncio.get_running_loop()

        def tick() -> None:
            self.flush()
            self._timer = loop.call_later(FLUSH_SECONDS, tick)

        if self._timer is None:
            self._timer = loop.call_later(FLUSH_SECONDS, tick)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition for a scrape: its body and content type (the Prometheus text format,
        or OpenMetrics when ``accept`` asks for it)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.scraped), content_type

    # ------------------------------------------------------------------ metrics_port

    def serve(self, host: str, port: int) -> None:
        """Answer scrapes on ``host:port``, from a thread (``metrics_port``). In a worker of
        ``hypercorn --workers N`` whose sibling serves the port already, nothing: that one
        answers for every worker.

        :raises ConfigError: the port cannot be bound (one line naming it).
        """
        try:
            self._server = serve_port(self.scraped, host, port)
        except MetricsPortTaken:
            if self.directory is None or multiprocessing.parent_process() is None:
                raise
            logger.debug("metrics_port %d is served by another worker", port)

    def close(self) -> None:
        """Stop flushing (after a last flush) and the ``metrics_port`` server, if any."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        if self._server is not None:
            stop_port(self._server)
            self._server = None


class _FoldFirst(Collector):
    """What a scrape reads: :attr:`Metrics.exposed`, once :meth:`Metrics.flush` has folded
    what the request path saw into it."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        self._metrics.flush()
        return iter(list(self._metrics.exposed.collect()))


class MetricsPortTaken(ConfigError):
    """``metrics_port`` is in use."""


def serve_port(registry: CollectorRegistry, host: str, port: int) -> WSGIServer:
    """prometheus_client's HTTP server for ``registry`` on ``host:port`` (a daemon thread).

    :raises ConfigError: the port cannot be bound (:class:`MetricsPortTaken` when in use).
    """
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise MetricsPortTaken(f"metrics_port: cannot listen on {host}:{port}: the address is "
                                   "already in use; choose another metrics_port") from None
        raise ConfigError(f"metrics_port: cannot listen on {host}:{port}: "
                          f"{error.strerror or error}; choose another metrics_port") from None
    return server


def stop_port(server: WSGIServer) -> None:
    thread = threading.Thread(target=server.shutdown, daemon=True)  # returns once serving stops
    thread.start()
    thread.join(5)
    with contextlib.suppress(OSError):
        server.server_close()


__all__ = ["MULTIPROC_ENV", "Metrics", "MetricsPortTaken", "Observations", "RouteMetrics", "SharedDirectory",
           "multiprocess_directory", "serve_port"]
