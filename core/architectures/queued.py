"""What ``worker_and_queue`` and ``batching`` share: jobs handed back through futures, a bounded
queue answered 429 when full, long predictions (``is_long_predict``) kept in a
:class:`LongResults` (and the result store, :mod:`core.results`), and a graceful :meth:`QueuedArchitecture.stop`.

Every request becomes a :class:`Job` whose ``future`` the worker resolves on the event loop;
the request awaits that future, so nothing polls. A request whose task is cancelled (its
``predict_timeout`` ran out, or the server gave up on it) cancels its future, and workers skip
cancelled jobs.

A request traced by a tracing plugin (:mod:`core.tracing`) hands its trace to its job
(:attr:`Job.trace`, taken in the request's task), and the worker records its ``queue`` and
``predict`` phases from wherever it runs the job.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any, ClassVar

from core import results
from core.components import Architecture, Deferred, ModelHost, ResultState, ResultStore
from core.errors import (
    InternalError,
    NotFound,
    QueueFull,
    RequestError,
    RequestTimeout,
    ServiceUnavailable,
)
from core.tracing import TRACE

if TYPE_CHECKING:
    from core.tracing import RequestTrace

logger = logging.getLogger("core")

#: Seconds a client is told to wait (``Retry-After``) when the queue is full.
RETRY_AFTER = "1"


class Job:
    """One request waiting for, or being run by, a worker."""

    __slots__ = ("abandoned", "answered", "arrived", "data", "finished", "future", "predict_id",
                 "queued_ns", "rows", "running", "trace")

    def __init__(self, data: dict[str, Any], predict_id: str, future: asyncio.Future[Any],
                 arrived: float, rows: int = 0, trace: RequestTrace | None = None) -> None:
        self.data = data
        #: The request's trace (:mod:`core.tracing`), or None; with one, :attr:`queued_ns` is
        #: when the job was made (epoch nanoseconds).
        self.trace = trace
        if trace is not None:
            self.queued_ns = time.time_ns()
        self.predict_id = predict_id
        self.future = future
        self.arrived = arrived
        self.rows = rows
        #: A worker thread runs it now / has returned from it / it was given up while running.
        self.running = False
        self.finished = False
        self.abandoned = False
        self.answered = False  # its outcome reached the event loop

    def resolve(self, outcome: Any) -> None:
        """Hand back a result, or a :class:`RequestError` to answer with; ignored when the
        request already went away (cancelled) or was answered (shutdown)."""
        if self.future.done():
            return
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, RequestError):
                outcome = InternalError(f"{type(outcome).__name__}: {outcome}")
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


def queue_full(depth: int, limit: int) -> QueueFull:
    return QueueFull(
        f"the prediction queue is full ({depth} waiting; max_queue_size is {limit}); "
        f"retry after {RETRY_AFTER} s",
        headers={"Retry-After": RETRY_AFTER},
    )


def shutting_down() -> ServiceUnavailable:
    return ServiceUnavailable(
        "the server is shutting down and could not finish this prediction in its grace period; "
        "send it again",
        headers={"Retry-After": RETRY_AFTER},
    )


class LongResults:
    """Long predictions (``is_long_predict``): results by predict id, in this process and in
    the :class:`~core.components.ResultStore` chosen by ``result_store_type``.

    A prediction this process runs is known here by its future, and also marked pending in the
    store; when it finishes, its outcome is written to the store once (:func:`core.results.encode`)
    and its future is kept ``ttl_predicted_data`` seconds after it finished.

    ``GET /get-predict/{id}`` for an id of this process awaits its future, as it always did (up
    to ``ttl_client_wait``, then 408). For any other id it asks the store: ready is decoded and
    answered (the same JSON as the process that ran it would answer), pending is asked again
    every :data:`POLL_SECONDS` up to ``ttl_client_wait`` (then 408), missing is 404 at once. A
    result can be fetched again, from any worker, until it expires.
    """

    #: Seconds between two looks at the store while another process runs the prediction.
    POLL_SECONDS = 0.05

    def __init__(self, ttl_predicted_data: float, ttl_client_wait: float, store: ResultStore,
                 pending_ttl: float) -> None:
        self.ttl = float(ttl_predicted_data)
        self.client_wait = float(ttl_client_wait)
        self.store = store
        #: How long a pending marker lasts at most (a worker that died never finishes).
        self.pending_ttl = float(pending_ttl)
        self._entries: dict[str, asyncio.Future[Any]] = {}
        self._writes: set[asyncio.Task[None]] = set()
        #: Results this process answered from the store: predictions another process ran.
        self.answered_from_store = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def add(self, predict_id: str, future: asyncio.Future[Any]) -> None:
        """Know ``predict_id`` here and mark it pending in the store; write it when done."""
        self._entries[predict_id] = future
        try:
            await self.store.put_pending(predict_id, self.pending_ttl)
        except Exception as error:  # this process still answers it
            logger.warning("could not mark prediction %r pending in the result store (%s): %s: %s; "
                           "only this worker process can answer it", predict_id,
                           type(self.store).__name__, type(error).__name__, error)
        future.add_done_callback(lambda done: self._finished(predict_id, done))

    def _finished(self, predict_id: str, future: asyncio.Future[Any]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved here: an error nobody fetches is not logged as lost
        loop = asyncio.get_running_loop()
        loop.call_later(self.ttl, self._entries.pop, predict_id, None)
        task = loop.create_task(self._write(predict_id, future))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, predict_id: str, future: asyncio.Future[Any]) -> None:
        """Write the outcome of ``future`` to the store (once; logged when it fails)."""
        if future.cancelled():
            outcome: Any = shutting_down()
        else:
            outcome = future.exception() or future.result()
        try:
            try:
                payload = results.encode(outcome)
            except RequestError as error:  # a result JSON cannot carry: answered as its error
                payload = results.encode(error)
            if not await self.store.put(predict_id, payload, self.ttl):
                logger.error("the result store already holds a result for prediction %r; "
                             "the new one is dropped", predict_id)
        except Exception:
            logger.exception("could not write the result of prediction %r to the result store "
                             "(%s): only this worker process can answer it", predict_id,
                             type(self.store).__name__)

    async def flush(self) -> None:
        """Wait for the results being written to the store (shutdown)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    def counts(self) -> dict[str, int]:
        """Long predictions this process ran and still holds (finished, and running), and the
        results it answered that another process ran."""
        done = sum(1 for future in self._entries.values() if future.done())
        return {"results_ready": done, "results_pending": len(self._entries) - done,
                "results_from_store": self.answered_from_store}

    async def get(self, predict_id: str) -> Any:
        """The result of ``predict_id`` (raises the RequestError it failed with)."""
        future = self._entries.get(predict_id)
        if future is None:
            return await self._from_store(predict_id)
        if not future.done():
            try:
                await asyncio.wait_for(asyncio.shield(future), self.client_wait)
            except asyncio.TimeoutError:
                raise self._not_ready(predict_id) from None
            except RequestError:
                pass  # the future failed: answered below like a finished one
        if future.cancelled():
            raise shutting_down()
        error = future.exception()
        if error is not None:
            raise error
        return future.result()

    async def _from_store(self, predict_id: str) -> Any:
        """The result of a prediction another process ran (or runs: waited for)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.client_wait
        while True:
            try:
                state, payload = await self.store.get(predict_id)
            except Exception as error:
                raise ServiceUnavailable(
                    f"the result store ({type(self.store).__name__}) cannot be read now: "
                    f"{type(error).__name__}: {error}; ask again later",
                    headers={"Retry-After": RETRY_AFTER},
                ) from None
            if state is ResultState.READY:
                assert payload is not None
                self.answered_from_store += 1
                return results.decode(payload)
            if state is ResultState.MISSING:
                raise NotFound(
                    f"no prediction with id {predict_id!r}: it is unknown, or its result expired "
                    f"(results are kept ttl_predicted_data = {self.ttl:g} s), or the server that "
                    f"accepted it does not share its result store ({type(self.store).__name__}; "
                    f"see result_store_type)",
                    loc=["path", "predict_id"],
                )
            if loop.time() >= deadline:
                raise self._not_ready(predict_id)
            await asyncio.sleep(min(self.POLL_SECONDS, max(deadline - loop.time(), 0.0)))

    def _not_ready(self, predict_id: str) -> RequestTimeout:
        return RequestTimeout(
            f"prediction {predict_id!r} is not ready after ttl_client_wait = "
            f"{self.client_wait:g} s; ask again later",
            headers={"Retry-After": RETRY_AFTER},
        )


class QueuedArchitecture(Architecture):
    """Base of the architectures that queue requests for workers.

    Subclasses implement :meth:`_submit` (queue one validated request and return its future,
    or raise :class:`TooManyRequests`), :meth:`_start_workers`, :meth:`_drain_queue` (take
    every job not yet started, for shutdown) and :attr:`queue_depth`.
    """

    settings: ClassVar[tuple[str, ...]] = (
        "max_queue_size", "worker_count", "is_long_predict", "ttl_predicted_data",
        "ttl_client_wait",
    )

    def __init__(self, host: ModelHost) -> None:
        super().__init__(host)
        conf = host.conf
        self.max_queue_size: int = conf.max_queue_size
        self.worker_count: int = conf.worker_count or conf.max_thread_loop_workers or os.cpu_count() or 1
        self.is_long_predict: bool = conf.is_long_predict
        self.results: LongResults | None = None
        if self.is_long_predict:
            # A pending marker lasts until the result replaces it; it expires only so that the
            # ids of a worker that died turn 404 one day: predict_timeout (or an hour) + the ttl.
            pending_ttl = (conf.predict_timeout or 3600.0) + conf.ttl_predicted_data
            self.results = LongResults(conf.ttl_predicted_data, conf.ttl_client_wait,
                                       host.result_store(), pending_ttl)
        self.in_flight = 0
        self.accepting = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outstanding: set[Job] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.results is not None:
            await self.results.store.start()
        self.accepting = True
        self._start_workers()

    async def stop(self, grace: float) -> None:
        """Refuse new work, let queued and running jobs finish for ``grace`` seconds, then
        answer the rest 503 and stop the workers."""
        self.accepting = False
        self._closing()
        if self._outstanding:
            try:
                await asyncio.wait_for(self._idle.wait(), grace)
            except asyncio.TimeoutError:
                logger.warning("%d prediction(s) not finished in the %.3g s grace period; "
                               "answering them 503", len(self._outstanding), grace)
        for job in self._drain_queue():
            job.resolve(shutting_down())
        for job in list(self._outstanding):
            job.resolve(shutting_down())
        await self._stop_workers()
        if self.results is not None:
            await self.results.flush()
            await self.results.store.close()

    def _closing(self) -> None:
        """Called when stop() begins (batching sends what it holds without waiting)."""

    @abc.abstractmethod
    def _start_workers(self) -> None: ...

    async def _stop_workers(self) -> None:
        """Cancel the worker tasks."""

    @abc.abstractmethod
    def _drain_queue(self) -> list[Job]: ...

    @property
    @abc.abstractmethod
    def queue_depth(self) -> int: ...

    # ------------------------------------------------------------------ predicting

    @abc.abstractmethod
    def _submit(self, job: Job) -> None:
        """Queue ``job`` (raise :class:`TooManyRequests` when the queue is full)."""

    def _new_job(self, data: dict[str, Any], predict_id: str) -> Job:
        assert self._loop is not None, "the architecture is not started"
        return Job(data, predict_id, self._loop.create_future(), self._loop.time(), trace=TRACE.get())

    def _track(self, job: Job) -> None:
        self._outstanding.add(job)
        self._idle.clear()
        job.future.add_done_callback(lambda _: self._untrack(job))

    def _untrack(self, job: Job) -> None:
        self._outstanding.discard(job)
        if not self._outstanding:
            self._idle.set()

    async def predict(self, data: dict[str, Any], predict_id: str) -> Any:
        if not self.accepting:
            raise ServiceUnavailable("the server is shutting down", headers={"Retry-After": RETRY_AFTER})
        job = self._new_job(data, predict_id)
        self._submit(job)
        self._track(job)
        if self.results is not None:
            await self.results.add(predict_id, job.future)
            return Deferred(predict_id)
        return await job.future

    # ------------------------------------------------------------------ long predictions

    @property
    def deferred(self) -> bool:
        return self.is_long_predict

    async def result(self, predict_id: str) -> Any:
        if self.results is None:
            return await super().result(predict_id)
        try:
            return await self.results.get(predict_id)
        except asyncio.CancelledError:  # the server gave up on this request (shutdown)
            _uncancel()
            raise shutting_down() from None

    @property
    def saturated(self) -> bool:
        return self.queue_depth >= self.max_queue_size

    # ------------------------------------------------------------------ reporting

    def info(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            **super().info(),
            "queue_depth": self.queue_depth,
            "in_flight": self.in_flight,
            "accepting": self.accepting,
        }
        if self.results is not None:
            state.update(self.results.counts())
        return state


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()
