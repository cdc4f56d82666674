"""Predict ids: random, unguessable, 32 hex digits; or the client's own ``X-Request-Id``.

Every request a prediction route admits gets one (:class:`core.http.Gate`): it is sent back in
the ``X-Predict-Id`` header and in error bodies, and every log line written for the request
carries it (:mod:`core.logs`). A client that sends ``X-Request-Id`` gets it back, and it is
the predict id, so that the client's id finds the server's log lines; except with long
predictions (``is_long_predict``), whose results are fetched by predict id, which must then
not be guessable: the id is minted there, and the client's is echoed and named on the access
line. An ``X-Request-Id`` that does not follow :data:`REQUEST_ID_RULE` is a 400.
"""

from __future__ import annotations

import os
import re
import threading

from core.errors import RequestError

REQUEST_ID_HEADER = "X-Request-Id"
#: The longest ``X-Request-Id`` taken.
MAX_REQUEST_ID = 128
#: What an ``X-Request-Id`` may hold, as said in the error that refuses another.
REQUEST_ID_RULE = (f"1 to {MAX_REQUEST_ID} characters, each a letter, a digit or one of - _ . : / + = "
                   "(a UUID, a hex or base64 id)")
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:/+=-]{{1,{MAX_REQUEST_ID}}}")


class InvalidRequestId(RequestError):
    """The client's ``X-Request-Id`` is too long, empty, or holds a character outside
    :data:`REQUEST_ID_RULE` (it would go into log lines and headers as it is)."""

    status_code = 400
    type = "invalid_request_id"


def request_id(value: bytes | None) -> str | None:
    """The client's ``X-Request-Id`` (the header's raw ``value``), or None.

    :raises InvalidRequestId: it does not follow :data:`REQUEST_ID_RULE`.
    """
    if value is None:
        return None
    text = value.decode("latin-1")
    if _REQUEST_ID.fullmatch(text) is None:
        got = f"{len(text)} characters" if len(text) > MAX_REQUEST_ID or not text else repr(text)
        raise InvalidRequestId(f"{REQUEST_ID_HEADER} must be {REQUEST_ID_RULE}; got {got}",
                               loc=["header", REQUEST_ID_HEADER.lower()])
    return text


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
