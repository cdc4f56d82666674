"""``batching``: merge concurrent requests into one model call.

Requests are grouped by everything but their rows: two requests are merged only when their
other predict arguments are equal (and their rows have the same shape past the first axis), so
no request is ever run with another's arguments. A group is sent to the model when it holds
``max_batch_size`` rows (at once), or when its oldest request has waited ``max_batch_wait``
milliseconds, so a lone request waits at most that long. At most ``worker_count`` batches run
at a time (in the thread pool, or on the event loop when batches of that size are known to be
quick, see :mod:`core.runner`); while they run, new requests keep joining the waiting
groups, so the batch size follows the load.

In the worker thread the batch's requests are transformed (``host.transform_in``), their rows
concatenated along the first axis, the model called once, and its result split back by each
request's row count: an array or list is sliced, a dict (ONNX outputs) is sliced value by
value. A result whose length is not the batch's row count fails that batch with a clear
message rather than misaligning rows. A request larger than ``max_batch_size`` runs as its own
call; an empty one is answered ``[]`` without calling the model. When the model raises on a
batch of several requests, the batch is cut in halves and each half run again, down to the
requests the model fails on: a request whose rows make the model raise gets the error alone,
and the requests batched with it their answers (``bisections`` in ``/info`` counts the cuts).

Each traced request (:mod:`core.tracing`) records its ``queue`` phase (until its batch's model
call began) and a ``predict`` phase for that call, with the batch's request and row counts
(``core.batch.requests``, ``core.batch.rows``); the batch's log lines carry the trace ids of its
requests, joined by commas.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
from collections import deque
from typing import Any

import numpy as np
import orjson

from core.architectures.queued import Job, QueuedArchitecture, queue_full
from core.components import ModelHost
from core.errors import PredictError, PredictTimeout, RequestError
from core.logs import PREDICT_ID, TRACE_ID
from core.tracing import AttributeValue

logger = logging.getLogger("core")

#: Seconds a batch's timer is set early. asyncio waits in ``epoll_wait``, whose timeout is in
#: whole milliseconds: ``selectors`` rounds the wait up to a millisecond and ``epoll.poll``
#: rounds the resulting float up once more, so a timer fires 1-2 ms late (1.2 ms at the median
#: on the bench machine). Set early by as much, a lone request waits at most ``max_batch_wait``
#: and close to it, not up to 2 ms more.
TIMER_SLACK = 0.002


class _Group:
    """Waiting requests that may share a model call."""

    __slots__ = ("due", "jobs", "key", "rows", "solo", "timer")

    def __init__(self, key: Any, solo: bool = False) -> None:
        self.key = key
        self.jobs: deque[Job] = deque()
        self.rows = 0
        self.due = solo
        self.solo = solo
        self.timer: asyncio.TimerHandle | None = None


class Batching(QueuedArchitecture):
    settings = ("max_batch_size", "max_batch_wait", *QueuedArchitecture.settings)

    def __init__(self, host: ModelHost) -> None:
        super().__init__(host)
        conf = host.conf
        self.max_batch_size: int = conf.max_batch_size
        self.max_batch_wait: float = conf.max_batch_wait / 1000.0
        self.predict_timeout: float | None = conf.predict_timeout
        self.rows_name: str | None = host.rows_name
        self._groups: dict[Any, _Group] = {}
        self._waiting = 0
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._solo_ids = itertools.count()
        self.batches = 0
        self.batched_rows = 0
        #: Times a model error on a batch of several requests had it cut in halves.
        self.bisections = 0
        metrics = host.metrics
        self._observe_rows = metrics.observe_batch_rows if metrics is not None else None

    @property
    def queue_depth(self) -> int:
        return self._waiting

    def _start_workers(self) -> None:
        pass  # batches start as tasks when they are due

    # ------------------------------------------------------------------ queueing

    def _key(self, data: dict[str, Any], rows: Any) -> Any:
        """Requests with equal keys may share one call: the other arguments' values and the
        shape of a row."""
        others = {name: value for name, value in data.items() if name != self.rows_name}
        if isinstance(rows, np.ndarray):
            row_shape: Any = (rows.shape[1:], rows.dtype.str)
        elif isinstance(rows, list) and rows:
            row_shape = np.shape(rows[0]) if isinstance(rows[0], list) else type(rows[0]).__name__
        else:
            row_shape = None
        try:
            return orjson.dumps(others, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
                                | orjson.OPT_NON_STR_KEYS), row_shape
        except TypeError:
            return ("unhashable", next(self._solo_ids))  # never merged

    async def predict(self, data: dict[str, Any], predict_id: str) -> Any:
        if self.accepting and not self.is_long_predict and self.host.is_empty(data):
            return []  # an empty X: nothing to run
        return await super().predict(data, predict_id)

    def _submit(self, job: Job) -> None:
        if self._waiting >= self.max_queue_size:
            raise queue_full(self._waiting, self.max_queue_size)
        rows = job.data.get(self.rows_name) if self.rows_name else None
        if rows is None or self.host.is_empty(job.data):
            job.rows = 0
            group = _Group(("solo", next(self._solo_ids)), solo=True)
        else:
            job.rows = len(rows)
            if job.rows >= self.max_batch_size:
                group = _Group(("solo", next(self._solo_ids)), solo=True)
            else:
                key = self._key(job.data, rows)
                group = self._groups.get(key) or _Group(key)
        if group.key not in self._groups:
            self._groups[group.key] = group
        group.jobs.append(job)
        group.rows += job.rows
        self._waiting += 1
        if len(group.jobs) == 1 and not group.due:
            self._arm(group)
        self._dispatch()

    def _arm(self, group: _Group) -> None:
        """Make ``group`` due ``max_batch_wait`` after its oldest request arrived (up to
        :data:`TIMER_SLACK` before: the event loop's timers fire up to that late)."""
        assert self._loop is not None
        if group.timer is not None:
            group.timer.cancel()
        front = group.jobs[0]
        deadline = front.arrived + self.max_batch_wait - min(TIMER_SLACK, self.max_batch_wait / 2)
        if deadline <= self._loop.time():
            group.due = True
            group.timer = None
        else:
            group.timer = self._loop.call_at(deadline, self._on_due, group, front)

    def _on_due(self, group: _Group, front: Job) -> None:
        group.timer = None
        if group.jobs and group.jobs[0] is front:
            group.due = True
            self._dispatch()

    def _ready(self, group: _Group) -> bool:
        return group.due or group.rows >= self.max_batch_size or not self.accepting

    def _dispatch(self) -> None:
        """Start batches while a worker is free and a group is full or due."""
        while self._running < self.worker_count:
            ready = [g for g in self._groups.values() if g.jobs and self._ready(g)]
            if not ready:
                return
            group = min(ready, key=lambda g: g.jobs[0].arrived)
            batch = self._take(group)
            if batch:
                self._running += 1
                create_task = asyncio.get_running_loop().create_task
                if batch[0].trace is None:
                    task = create_task(self._run(batch))
                else:  # traced: in a context of its own, where no one request's trace is current
                    task = contextvars.Context().run(create_task, self._run(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _take(self, group: _Group) -> list[Job]:
        """Up to ``max_batch_size`` rows from the front of ``group`` (at least one request)."""
        batch: list[Job] = []
        rows = 0
        while group.jobs:
            job = group.jobs[0]
            if job.future.done():  # cancelled while waiting
                group.jobs.popleft()
                group.rows -= job.rows
                self._waiting -= 1
                continue
            if batch and rows + job.rows > self.max_batch_size:
                break
            group.jobs.popleft()
            group.rows -= job.rows
            self._waiting -= 1
            batch.append(job)
            rows += job.rows
        if group.jobs:
            group.due = False
            self._arm(group)
        else:
            if group.timer is not None:
                group.timer.cancel()
            del self._groups[group.key]
        return batch

    def _drain_queue(self) -> list[Job]:
        jobs = [job for group in self._groups.values() for job in group.jobs]
        for group in self._groups.values():
            if group.timer is not None:
                group.timer.cancel()
        self._groups.clear()
        self._waiting = 0
        return jobs

    def _closing(self) -> None:
        self._dispatch()  # not accepting: every group is due now

    async def _stop_workers(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    # ------------------------------------------------------------------ running

    async def _run(self, batch: list[Job]) -> None:
        self.in_flight += len(batch)
        self.batches += 1
        rows = sum(job.rows for job in batch)
        self.batched_rows += rows
        if self._observe_rows is not None:
            self._observe_rows(rows)
        # this task's own context: the batch's log lines carry the ids of all its requests
        PREDICT_ID.set(",".join(job.predict_id for job in batch))
        call = self._predict_batch
        if batch[0].trace is not None:
            TRACE_ID.set(",".join(job.trace.trace_id for job in batch if job.trace is not None))
            call = self._predict_batch_traced
        # in the thread pool, or inline when batches of this size are quick
        running = self.host.runner.run(lambda: call(batch), ("batch", rows.bit_length()))
        try:
            if self.predict_timeout is None:
                outcomes = await running
            else:  # past it, the batch is stuck: its slot goes to the next batch
                outcomes = await asyncio.wait_for(running, self.predict_timeout)
        except asyncio.TimeoutError:
            outcomes = [PredictTimeout(f"the batch did not finish in predict_timeout = "
                                       f"{self.predict_timeout:g} s")] * len(batch)
        except Exception as error:
            outcomes = [error] * len(batch)
        finally:
            self.in_flight -= len(batch)
            self._running -= 1
        for job, outcome in zip(batch, outcomes):
            job.resolve(outcome)
        self._dispatch()

    def _predict_batch_traced(self, batch: list[Job]) -> list[Any]:
        """:meth:`_predict_batch`, recording each traced request's ``queue`` and ``predict``
        phases."""
        started = time.time_ns()
        try:
            return self._predict_batch(batch)
        finally:
            ended = time.time_ns()
            attributes: dict[str, AttributeValue] = {
                "core.architecture": self.host.conf.mode, "core.batch.requests": len(batch),
                "core.batch.rows": sum(job.rows for job in batch)}
            for job in batch:
                if job.trace is not None:
                    job.trace.phase("queue", job.queued_ns, started)
                    job.trace.phase("predict", started, ended, attributes)

    def _predict_batch(self, batch: list[Job]) -> list[Any]:
        """In the worker thread: transform, merge, call the model once, split, transform back."""
        ml = self.host
        outcomes: list[Any] = [None] * len(batch)
        if len(batch) == 1 and ml.is_empty(batch[0].data):
            return [[]]
        values: list[tuple[int, dict[str, Any]]] = []
        for index, job in enumerate(batch):
            try:
                values.append((index, ml.transform_in(job.data)))
            except Exception as error:
                outcomes[index] = error
        if not values:
            return outcomes
        try:
            merged, counts = self._merge(values)
        except (ValueError, TypeError):  # rows that cannot share an array: one call each
            for index, value in values:
                try:
                    outcomes[index] = ml.transform_out(ml.call_model(value))
                except Exception as error:
                    outcomes[index] = error
            return outcomes
        self._run_merged(values, merged, counts, outcomes)
        return outcomes

    def _merge(self, values: list[tuple[int, dict[str, Any]]]) -> tuple[dict[str, Any], list[int]]:
        """The requests' model-format values as one call's (their rows concatenated), and each
        one's row count."""
        name = self.rows_name
        assert name is not None
        parts = [value[name] for _, value in values]
        merged = dict(values[0][1])
        merged[name] = _concatenate(parts)
        return merged, [len(part) for part in parts]

    def _run_merged(self, values: list[tuple[int, dict[str, Any]]], merged: dict[str, Any],
                    counts: list[int], outcomes: list[Any]) -> None:
        """Call the model on ``merged`` and put each request's part of the result (or error) in
        ``outcomes``. When the model raises on the rows of several requests, the batch is cut in
        halves and each half called again, down to the requests whose rows make it raise: a
        request the model fails on fails alone, never the requests batched with it. (k failing
        requests of n cost about 2k log2(n) more calls, not n.)"""
        ml = self.host
        try:
            result = ml.call_model(merged)
        except PredictError as error:
            if len(values) == 1:
                outcomes[values[0][0]] = error
                return
            self.bisections += 1
            middle = len(values) // 2
            for half in (values[:middle], values[middle:]):
                self._run_merged(half, *self._merge(half), outcomes)
            return
        try:
            results = split_result(result, counts, len(values))
        except RequestError as error:  # the model's answer does not fit the batch: none gets one
            for index, _ in values:
                outcomes[index] = error
            return
        for (index, _), part in zip(values, results):
            try:
                outcomes[index] = ml.transform_out(part)
            except Exception as error:
                outcomes[index] = error

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "max_batch_wait": self.host.conf.max_batch_wait,
            "worker_count": self.worker_count,
            "batches": self.batches,
            "batched_rows": self.batched_rows,
            "bisections": self.bisections,
            **self.host.runner.info(),
        }


def _concatenate(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(part, np.ndarray) for part in parts):
        return np.concatenate(parts, axis=0)
    if all(isinstance(part, list) for part in parts):
        return list(itertools.chain.from_iterable(parts))
    raise TypeError("rows of different types")


def _length(value: Any) -> int | None:
    if isinstance(value, np.ndarray):
        return len(value) if value.ndim else None
    if hasattr(value, "__len__") and not isinstance(value, (str, bytes, dict)):
        return len(value)
    return None


def split_result(result: Any, counts: list[int], requests: int) -> list[Any]:
    """Split a batch's result into one part per request, ``counts[i]`` rows each.

    An array or list of the batch's row count is sliced; a dict (ONNX outputs) or a tuple of
    such arrays is split value by value. Anything else is a :class:`PredictError`.
    """
    total = sum(counts)
    if len(counts) == 1:
        return [result]
    offsets = list(itertools.accumulate(counts, initial=0))

    def slices(value: Any, what: str) -> list[Any]:
        length = _length(value)
        if length != total:
            got = f"{length} rows" if length is not None else f"a {type(value).__name__}"
            raise PredictError(
                f"batching: the model returned {got}{what} for a batch of {total} rows "
                f"({requests} requests merged); it must return one result per input row, so "
                f"its rows can be handed back to each request. Serve this model with "
                f"mode = 'directly_to_predict' or 'worker_and_queue'"
            )
        return [value[start:end] for start, end in zip(offsets, offsets[1:])]

    if isinstance(result, dict):
        columns = {key: slices(value, f" in output {key!r}") for key, value in result.items()}
        return [{key: parts[i] for key, parts in columns.items()} for i in range(len(counts))]
    if isinstance(result, tuple) and _length(result) != total and result \
            and all(_length(item) == total for item in result):
        columns_ = [slices(item, f" in output {i}") for i, item in enumerate(result)]
        return [tuple(parts[i] for parts in columns_) for i in range(len(counts))]
    return slices(result, "")
