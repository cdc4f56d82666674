"""A model that logs the way model code does, for the metrics and logging tests."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

logger = logging.getLogger("user_model")

#: Seconds a prediction waits at most for its ``wait_for`` file.
WAIT_LIMIT = 60.0


class LoggingModel:
    """Logs ``the model got N rows`` with the ``logging`` module; with ``wait_for``, waits until
    that file exists (a test holds a prediction slot, and frees it, without timing anything);
    with ``fail``, raises."""

    def predict(self, X: Any, wait_for: str = "", fail: bool = False) -> Any:
        logger.info("the model got %d rows", len(X))
        deadline = time.monotonic() + WAIT_LIMIT
        while wait_for and not os.path.exists(wait_for) and time.monotonic() < deadline:
            time.sleep(0.01)
        if fail:
            raise ValueError("the model failed on purpose")
        return [float(sum(row)) for row in X]


logging_model = LoggingModel()
