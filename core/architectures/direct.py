"""``directly_to_predict``: each request runs the model at once, in the thread pool.

The pool has ``max_thread_loop_workers`` threads, so that many predictions run at the same
time while the event loop stays free to answer ``/health`` and ``/info``. Predictions known to
be quicker than the hand-off to a thread (``max_inline_predict_ms``) run on the event loop
instead, within the same limit (:mod:`core.runner`). There is no global lock: models that are
not thread-safe should set ``max_thread_loop_workers = 1``.
"""

from __future__ import annotations

from typing import Any

from core.components import Architecture


class DirectlyToPredict(Architecture):
    settings = ("use_thread_loop", "max_thread_loop_workers", "max_inline_predict_ms")

    def __init__(self, up: Any) -> None:
        super().__init__(up)
        self.in_flight = 0

    async def predict(self, data: dict[str, Any], predict_id: str) -> Any:
        self.in_flight += 1
        try:
            return await self.up.ml.run_in_pool(data)
        finally:
            self.in_flight -= 1

    def info(self) -> dict[str, Any]:
        return {**super().info(), "in_flight": self.in_flight, "queue_depth": 0,
                **self.up.ml.runner.info()}
