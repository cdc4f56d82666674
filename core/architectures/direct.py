"""``directly_to_predict``: each request runs the model at once, in the thread pool.

The pool runs ``max_thread_loop_workers`` predictions at the same time while the event loop
stays free to answer ``/health`` and ``/info``; more wait for a free slot. Predictions known to
be quicker than the hand-off to a thread (``max_inline_predict_ms``) run on the event loop
instead, under a timer that moves a stalled one to the pool (:mod:`core.runner`). There is no
global lock: models that are not thread-safe should set ``max_thread_loop_workers = 1``.

A traced request (:mod:`core.tracing`) records its ``predict`` phase around the call.
"""

from __future__ import annotations

import time
from typing import Any

from core.components import Architecture, ModelHost
from core.tracing import TRACE


class DirectlyToPredict(Architecture):
    settings = ("use_thread_loop", "max_thread_loop_workers", "max_inline_predict_ms")

    def __init__(self, host: ModelHost) -> None:
        super().__init__(host)
        self.in_flight = 0

    async def predict(self, data: dict[str, Any], predict_id: str) -> Any:
        self.in_flight += 1
        trace = TRACE.get()
        try:
            if trace is None:
                return await self.host.run(data)
            started = time.time_ns()
            try:
                return await self.host.run(data)
            finally:
                trace.phase("predict", started, time.time_ns(), {"core.architecture": self.host.conf.mode})
        finally:
            self.in_flight -= 1

    def info(self) -> dict[str, Any]:
        return {**super().info(), "in_flight": self.in_flight, "queue_depth": 0,
                **self.host.runner.info()}
