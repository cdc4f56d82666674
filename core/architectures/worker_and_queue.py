"""``worker_and_queue``: a bounded queue feeding ``worker_count`` workers.

A request starts at once when fewer than ``worker_count`` predictions are running; otherwise
it waits in a FIFO queue of at most ``max_queue_size`` jobs, and a full queue is answered 429
with ``Retry-After`` before anything is accepted. A worker is a slot, not a polling task: the
model runs in the thread pool (``up.ml.executor``); the worker thread hands each result to the
request's future and takes the next queued job itself, so a fast model's latency is not
padded and the thread never waits for the event loop. A request that finds a slot free and is
known to be quicker than the hand-off to a thread (``max_inline_predict_ms``, see
:mod:`core.runner`) runs in that slot on the event loop instead. ``worker_count`` defaults to
``max_thread_loop_workers`` (else the CPU count), the number of threads that can run the model
at once.

With ``is_long_predict = true``, ``POST /predict`` answers 202 with the predict id at once and
``GET /get-predict/{predict_id}`` returns the result (see :class:`ResultStore`).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any

from core.architectures.queued import Job, QueuedArchitecture, queue_full
from core.runner import PredictRunner, timed

if TYPE_CHECKING:
    from core.up import UP


class WorkerAndQueue(QueuedArchitecture):
    settings = (*QueuedArchitecture.settings, "max_thread_loop_workers", "max_inline_predict_ms")

    def __init__(self, up: UP) -> None:
        super().__init__(up)
        self._queue: deque[Job] = deque()
        self._lock = threading.Lock()
        rows = up.ml.interface.rows if up.ml.interface else None
        self._rows_name = rows.name if rows else None

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def _start_workers(self) -> None:
        pass  # a job starts when it is submitted or when a running one finishes

    def _submit(self, job: Job) -> None:
        with self._lock:
            if self.in_flight < self.worker_count:
                self.in_flight += 1
            elif len(self._queue) >= self.max_queue_size:
                raise queue_full(len(self._queue), self.max_queue_size)
            else:
                self._queue.append(job)
                return
        runner = self.up.ml.runner
        kind = PredictRunner.kind(job.data, self._rows_name)
        if not runner.quick(kind):
            self._start_worker(job)
            return
        # Quick (or use_thread_loop = false): run it in this slot, on the event loop.
        try:
            outcome: Any = runner.call_inline(lambda: self.up.ml.predict_sync(job.data), kind)
        except Exception as error:  # handed to the request, answered there
            outcome = error
        job.resolve(outcome)
        with self._lock:
            following = self._queue.popleft() if self._queue else None
            if following is None:
                self.in_flight -= 1
        if following is not None:  # keep the slot busy with the queue's next job
            self._start_worker(following)

    def _start_worker(self, job: Job) -> None:
        executor = self.up.ml.executor
        assert executor is not None
        executor.submit(self._work, job)

    def _work(self, job: Job | None) -> None:
        """A worker: run ``job``, then the queued jobs, in this thread until the queue is
        empty, so the thread never idles waiting for the event loop to hand it the next one."""
        ml = self.up.ml
        loop = self._loop
        assert loop is not None
        while job is not None:
            if not job.future.done():  # skip requests that went away
                kind = PredictRunner.kind(job.data, self._rows_name)
                wall = cpu = 0.0
                try:
                    outcome, wall, cpu = timed(partial(ml.predict_sync, job.data))
                except Exception as error:  # handed to the request, answered there
                    outcome, kind = error, None
                with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                    loop.call_soon_threadsafe(self._finished, job, outcome, kind, wall, cpu)
            with self._lock:
                if self._queue:
                    job = self._queue.popleft()
                else:
                    self.in_flight -= 1
                    job = None

    def _finished(self, job: Job, outcome: Any, kind: Any, wall: float, cpu: float) -> None:
        """On the event loop: answer the request and time its kind (:mod:`core.runner`)."""
        job.resolve(outcome)
        self.up.ml.runner.record(kind, wall, cpu)

    def _drain_queue(self) -> list[Job]:
        with self._lock:
            jobs = list(self._queue)
            self._queue.clear()
        return jobs

    def info(self) -> dict[str, Any]:
        return {**super().info(), "worker_count": self.worker_count,
                **self.up.ml.runner.info()}
