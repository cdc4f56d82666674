"""Predict ids: random, unguessable, 32 hex digits.

Every request a prediction route admits gets one (:class:`core.http.Gate`): it is sent back in
the ``X-Predict-Id`` header and in error bodies, and a long prediction's result is fetched by
it, so it must not be guessable.
"""

from __future__ import annotations

import os
import threading


class PredictIds:
    """``new_predict_id()`` -> 32 hex digits from ``os.urandom``, read 4 KiB at a time (one
    system call per 256 ids, not one per request) and never shared with a forked child."""

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0
        self._lock = threading.Lock()  # servers may run in several threads of one process
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._buffer, self._offset = b"", 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer, self._offset = os.urandom(4096), 0
            start = self._offset
            self._offset = start + 16
            return self._buffer[start:start + 16].hex()


new_predict_id = PredictIds()
