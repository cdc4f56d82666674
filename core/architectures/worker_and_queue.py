"""``worker_and_queue``: a bounded queue feeding ``worker_count`` workers.

A request starts at once when fewer than ``worker_count`` predictions are running; otherwise
it waits in a FIFO queue of at most ``max_queue_size`` jobs, and a full queue is answered 429
with ``Retry-After`` before anything is accepted. A worker is a slot, not a polling task: the
model runs in the thread pool (``host.runner.executor``); the worker thread hands each result
to the request's future and takes the next queued job itself, so a fast model's latency is not
padded and the thread never waits for the event loop. A request that finds a slot free and is
known to be quicker than the hand-off to a thread (``max_inline_predict_ms``, see
:mod:`core.runner`) runs in that slot on the event loop instead, under the runner's stall
timer: a stalled one is interrupted and handed to a worker thread. ``worker_count`` defaults to
``max_thread_loop_workers`` (else the CPU count), the number of threads that can run the model
at once.

**Stuck jobs.** When a running job's request stops waiting (``predict_timeout``), its thread
cannot be stopped: the job is *abandoned*, its slot is given back at once (a spare thread of
the pool takes the queue's next job), and the thread, once the call returns, leaves without
taking another job. The runner counts it as stuck until then.

With ``is_long_predict = true``, ``POST /predict`` answers 202 with the predict id at once and
``GET /get-predict/{predict_id}`` returns the result (see :class:`~core.architectures.queued.LongResults`).

A traced request (:mod:`core.tracing`) records its ``queue`` and ``predict`` phases where its
job runs; in a worker thread the model's log lines carry its trace id.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from functools import partial
from typing import Any

from core.architectures.queued import Job, QueuedArchitecture, queue_full
from core.components import ModelHost
from core.logs import PREDICT_ID, TRACE_ID
from core.runner import InlineStall, PredictRunner, timed


class WorkerAndQueue(QueuedArchitecture):
    settings = (*QueuedArchitecture.settings, "max_thread_loop_workers", "max_inline_predict_ms")

    def __init__(self, host: ModelHost) -> None:
        super().__init__(host)
        self._queue: deque[Job] = deque()
        self._lock = threading.Lock()
        self._rows_name = host.rows_name
        #: Abandoned jobs still running: the runner's "returned" callback for each.
        self._stuck: dict[int, Any] = {}

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def _start_workers(self) -> None:
        pass  # a job starts when it is submitted or when a running one finishes

    def _submit(self, job: Job) -> None:
        job.future.add_done_callback(lambda _: self._abandon(job))
        with self._lock:
            if self.in_flight < self.worker_count:
                self.in_flight += 1
            elif len(self._queue) >= self.max_queue_size:
                raise queue_full(len(self._queue), self.max_queue_size)
            else:
                self._queue.append(job)
                return
        runner = self.host.runner
        kind = PredictRunner.kind(job.data, self._rows_name)
        if runner.executor is not None and not runner.quick(kind):
            self._start_worker(job)
            return
        # Quick (or use_thread_loop = false): run it in this slot, on the event loop.
        started = 0 if job.trace is None else time.time_ns()
        try:
            outcome: Any = runner.call_inline(partial(self.host.predict_sync, job.data), kind)
        except InlineStall:  # interrupted: run it again, in a worker thread
            self._start_worker(job)
            return
        except Exception as error:  # handed to the request, answered there
            outcome = error
        if job.trace is not None:
            self._traced(job, started)
        job.resolve(outcome)
        with self._lock:
            following = self._queue.popleft() if self._queue else None
            if following is None:
                self.in_flight -= 1
        if following is not None:  # keep the slot busy with the queue's next job
            self._start_worker(following)

    def _start_worker(self, job: Job) -> None:
        executor = self.host.runner.executor
        assert executor is not None
        executor.submit(self._work, job)

    def _work(self, job: Job | None) -> None:
        """A worker: run ``job``, then the queued jobs, in this thread until the queue is
        empty, so the thread never idles waiting for the event loop to hand it the next one.
        A thread whose job was abandoned while it ran leaves after it (its slot was given
        back already)."""
        host = self.host
        loop = self._loop
        assert loop is not None
        while job is not None:
            with self._lock:
                skip = job.future.done()  # the request went away while the job waited
                job.running = not skip
            if not skip:
                kind = PredictRunner.kind(job.data, self._rows_name)
                wall = cpu = 0.0
                token = PREDICT_ID.set(job.predict_id)  # the model's log lines carry the job's id
                if job.trace is not None:
                    started = time.time_ns()
                    trace_token = TRACE_ID.set(job.trace.trace_id)
                try:
                    outcome, wall, cpu = timed(partial(host.predict_sync, job.data))
                except Exception as error:  # handed to the request, answered there
                    outcome, kind = error, None
                finally:
                    PREDICT_ID.reset(token)
                    if job.trace is not None:
                        TRACE_ID.reset(trace_token)
                        self._traced(job, started)
                with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                    loop.call_soon_threadsafe(self._finished, job, outcome, kind, wall, cpu)
            with self._lock:
                job.finished = True
                if job.abandoned:
                    return  # the slot went to another thread when the job was given up
                if self._queue:
                    job = self._queue.popleft()
                else:
                    self.in_flight -= 1
                    job = None

    def _traced(self, job: Job, started: int) -> None:
        """Record the ``queue`` and ``predict`` phases of a traced job whose model call began
        at ``started`` and ended now."""
        assert job.trace is not None
        job.trace.phase("queue", job.queued_ns, started)
        job.trace.phase("predict", started, time.time_ns(), {"core.architecture": self.host.conf.mode})

    def _abandon(self, job: Job) -> None:
        """On the loop, when a job's request is done: if it was given up (cancelled) while a
        thread runs it, give its slot back and count the call as stuck until it returns."""
        if not job.future.cancelled() or job.answered:
            return
        with self._lock:
            if not job.running or job.finished or job.abandoned:
                return  # not started (a worker skips it), or over already
            job.abandoned = True
            following = self._queue.popleft() if self._queue else None
            if following is None:
                self.in_flight -= 1
        self._stuck[id(job)] = self.host.runner.mark_stuck()
        if following is not None:
            self._start_worker(following)

    def _finished(self, job: Job, outcome: Any, kind: Any, wall: float, cpu: float) -> None:
        """On the event loop: answer the request and time its kind (:mod:`core.runner`)."""
        job.answered = True
        job.resolve(outcome)
        returned = self._stuck.pop(id(job), None)
        if returned is not None:
            returned()  # a stuck call is over
        else:
            self.host.runner.record(kind, wall, cpu)

    def _drain_queue(self) -> list[Job]:
        with self._lock:
            jobs = list(self._queue)
            self._queue.clear()
        return jobs

    def info(self) -> dict[str, Any]:
        return {**super().info(), "worker_count": self.worker_count,
                **self.host.runner.info()}
