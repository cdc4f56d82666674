"""The request headers the admission gate reads, found in one pass.

The gate needs four headers of every request: ``X-Request-Id`` (:mod:`core.http.ids`),
``Content-Type``, ``Content-Length`` and ``Content-Encoding`` (:mod:`core.http.body`). ASGI
hands them over as a list of ``(name, value)`` pairs with lower-case names; a request that
repeats one is read by its first value, as Starlette does.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any


class RequestHeaders:
    """The four headers the gate reads (raw bytes, None when absent)."""

    __slots__ = ("content_encoding", "content_length", "content_type", "request_id")

    def __init__(self, scope: MutableMapping[str, Any]) -> None:
        content_type = content_length = content_encoding = request_id = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                if content_type is None:
                    content_type = value
            elif name == b"content-length":
                if content_length is None:
                    content_length = value
            elif name == b"x-request-id":
                if request_id is None:
                    request_id = value
            elif name == b"content-encoding" and content_encoding is None:
                content_encoding = value
        self.content_type: bytes | None = content_type
        self.content_length: bytes | None = content_length
        self.content_encoding: bytes | None = content_encoding
        self.request_id: bytes | None = request_id
