"""A custom architecture used by dotted path (``mode = "arch_custom.EchoRowsArchitecture"``)."""

from __future__ import annotations

from typing import Any

import core


class EchoRowsArchitecture(core.Architecture):
    """Runs the model like ``directly_to_predict`` and says so in ``/info``."""

    settings = ("max_thread_loop_workers",)

    async def predict(self, data: dict[str, Any], predict_id: str) -> Any:
        return {"custom": await self.host.run(data)}

    def info(self) -> dict[str, Any]:
        return {**super().info(), "custom": True, "queue_depth": 0, "in_flight": 0}
