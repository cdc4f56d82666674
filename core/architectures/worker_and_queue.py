"""``worker_and_queue``: a bounded queue feeding ``worker_count`` workers.

A request starts at once when fewer than ``worker_count`` predictions are running; otherwise
it waits in a FIFO queue of at most ``max_queue_size`` jobs, and a full queue is answered 429
with ``Retry-After`` before anything is accepted. A worker is a slot, not a polling task: the
model runs in the thread pool (``up.ml.executor``), and when a prediction finishes its done
callback hands the result to the request's future and starts the next queued job, so a fast
model's latency is not padded. ``worker_count`` defaults to ``max_thread_loop_workers``
(else the CPU count), the number of threads that can run the model at once.

With ``is_long_predict = true``, ``POST /predict`` answers 202 with the predict id at once and
``GET /get-predict/{predict_id}`` returns the result (see :class:`ResultStore`).
"""

from __future__ import annotations

import contextlib
from collections import deque
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from core.architectures.queued import Job, QueuedArchitecture, queue_full, shutting_down

if TYPE_CHECKING:
    from core.up import UP


class WorkerAndQueue(QueuedArchitecture):
    settings = (*QueuedArchitecture.settings, "max_thread_loop_workers")

    def __init__(self, up: UP) -> None:
        super().__init__(up)
        self._queue: deque[Job] = deque()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def _start_workers(self) -> None:
        pass  # a job starts when it is submitted or when a running one finishes

    def _submit(self, job: Job) -> None:
        if self.in_flight < self.worker_count:
            self._run(job)
        elif len(self._queue) >= self.max_queue_size:
            raise queue_full(len(self._queue), self.max_queue_size)
        else:
            self._queue.append(job)

    def _run(self, job: Job) -> None:
        ml = self.up.ml
        self.in_flight += 1
        if ml.executor is None:  # use_thread_loop = false: run in the event loop's thread
            try:
                outcome: Any = ml.predict_sync(job.data)
            except Exception as error:
                outcome = error
            self._finished(job, outcome)
            return
        running = ml.executor.submit(ml.predict_sync, job.data)
        loop = self._loop
        assert loop is not None

        def hand_back(done: Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                loop.call_soon_threadsafe(self._done, job, done)

        running.add_done_callback(hand_back)

    def _done(self, job: Job, done: Future[Any]) -> None:
        if done.cancelled():
            outcome: Any = shutting_down()
        else:
            error = done.exception()
            outcome = error if error is not None else done.result()
        self._finished(job, outcome)

    def _finished(self, job: Job, outcome: Any) -> None:
        self.in_flight -= 1
        job.resolve(outcome)
        while self._queue and self.in_flight < self.worker_count:
            waiting = self._queue.popleft()
            if not waiting.future.done():  # skip requests that went away
                self._run(waiting)

    def _drain_queue(self) -> list[Job]:
        jobs = list(self._queue)
        self._queue.clear()
        return jobs

    def info(self) -> dict[str, Any]:
        return {**super().info(), "worker_count": self.worker_count}
