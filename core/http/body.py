"""Reading a request body under the gate's limits: size, time, content type and encoding.

:func:`read_body` is the one place a prediction route's body is read. It holds whatever way
the body comes:

* its size: a ``Content-Length`` over ``max_body_size`` is refused before a byte is read, and a
  chunked body (no ``Content-Length``) is refused as soon as it passes the limit, so a worker
  never holds more than the limit of one body;
* its encoding: ``Content-Encoding: gzip`` or ``deflate`` is undone as it arrives, and the limit
  holds for the *decompressed* size (decompression stops at the limit: a small bomb cannot
  inflate into memory); any other encoding is 415;
* its time: a body that has not arrived ``body_timeout`` seconds after the request began is
  408 and the connection is closed (the gate says so with ``Connection: close``), so a client
  that trickles its body holds neither a prediction slot nor the connection for long.

The content type is checked before reading (:func:`check_content_type`): a route names the
media types it takes, and anything else is 415, so a form posted cross-site as ``text/plain``
never reaches a model.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from core.errors import BodyTooLarge, InvalidRequestBody, RequestError, RequestTimeout
from core.http.headers import RequestHeaders
from core.validation import parse_json

__all__ = ["ClientGone", "MediaTypes", "UnsupportedMediaType", "check_content_type", "parse_json", "read_body"]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

#: Bytes decompressed at a time: the most a compressed body inflates between two checks.
_INFLATE_STEP = 1 << 20


class ClientGone(Exception):
    """The client disconnected before its body was complete: nobody is left to answer."""


class UnsupportedMediaType(RequestError):
    """The body's ``Content-Type`` or ``Content-Encoding`` is not one the route takes."""

    status_code = 415
    type = "unsupported_media_type"


def media_type(value: bytes | None) -> str | None:
    """``b"Application/JSON; charset=utf-8"`` -> ``"application/json"``; None when absent."""
    if value is None:
        return None
    return value.split(b";", 1)[0].strip().decode("latin-1").lower() or None


def takes(accepts: tuple[str, ...], kind: str | None) -> bool:
    """Whether a route that takes ``accepts`` takes a body of media type ``kind``.

    ``accepts`` holds media types (``application/json``), wildcards (``application/*``,
    ``*/*``) and ``""`` for a body sent without a ``Content-Type`` (non-browser clients; a
    browser always sends one). ``application/json`` also takes ``application/<x>+json``.
    """
    if kind is None:
        return "" in accepts
    if kind in accepts or "*/*" in accepts:
        return True
    major = kind.split("/", 1)[0]
    if f"{major}/*" in accepts:
        return True
    return kind.endswith("+json") and kind.startswith("application/") and "application/json" in accepts


def check_content_type(content_type: bytes | None, accepts: tuple[str, ...]) -> None:
    """Raise 415 unless ``content_type`` (the request's header, raw) is one of ``accepts``."""
    kind = media_type(content_type)
    if not takes(accepts, kind):
        shown = ", ".join(a for a in accepts if a) or "none"
        got = f"Content-Type {kind!r}" if kind else "no Content-Type"
        raise UnsupportedMediaType(f"this route takes {shown}; the request has {got}",
                                   loc=["header", "content-type"])


class MediaTypes:
    """The media types a route takes (``accepts``, as for :func:`takes`), and the raw
    ``Content-Type`` values already found acceptable, so that a request is checked with one
    set lookup: clients send the same few bytes over and over. At most :attr:`REMEMBERED`
    values are remembered (a client cannot grow the set without bound); a refused value is
    never remembered, it is checked again and refused again."""

    __slots__ = ("_taken", "accepts")
    REMEMBERED = 64

    def __init__(self, accepts: tuple[str, ...]) -> None:
        self.accepts = accepts
        self._taken: set[bytes | None] = set()

    def check(self, content_type: bytes | None) -> None:
        """Raise 415 unless ``content_type`` (the request's header, raw) is taken."""
        if content_type in self._taken:
            return
        check_content_type(content_type, self.accepts)
        if len(self._taken) < self.REMEMBERED:
            self._taken.add(content_type)


def _decoder(encoding: bytes | None) -> Any:
    """A zlib decompressor for ``Content-Encoding``, None for none; 415 for anything else."""
    if encoding is None:
        return None
    name = encoding.strip().lower()
    if name in (b"", b"identity"):
        return None
    if name in (b"gzip", b"x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if name == b"deflate":
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # a zlib (HTTP deflate) or gzip header; raw: 400
    raise UnsupportedMediaType(
        f"Content-Encoding {name.decode('latin-1')!r} is not supported; send gzip, deflate or none",
        loc=["header", "content-encoding"],
    )


def too_large(limit: int, what: str = "the body") -> BodyTooLarge:
    return BodyTooLarge(f"{what} is over the limit (max_body_size) of {limit} bytes")


async def read_body(receive: Receive, limit: int, headers: RequestHeaders) -> bytes:
    """The whole body of the request whose ``headers`` these are, decoded, at most ``limit``
    bytes.

    :raises BodyTooLarge: (413) the body, or what it decompresses to, is over ``limit``.
    :raises UnsupportedMediaType: (415) a ``Content-Encoding`` other than gzip or deflate.
    :raises ClientGone: the client disconnected first.

    The time limit is the gate's (it cancels the read at its deadline).
    """
    length = headers.content_length
    if length is not None and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(f"the body is {length.decode()} bytes; the limit (max_body_size) is {limit}")
    encoding = headers.content_encoding
    decoder = None if encoding is None else _decoder(encoding)
    if decoder is not None:
        return await _read_decoded(receive, limit, decoder)
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # the usual case: the whole body in one message
        if len(body) > limit:
            raise too_large(limit)
        return body
    return await _read_plain(receive, limit, message)


async def _read_plain(receive: Receive, limit: int, message: MutableMapping[str, Any]) -> bytes:
    """The rest of a body that came in several messages, ``message`` the first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


async def _read_decoded(receive: Receive, limit: int, decoder: Any) -> bytes:
    out = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        data = message.get("body", b"")
        try:
            while data:
                out += decoder.decompress(data, min(_INFLATE_STEP, limit + 1 - len(out)))
                if len(out) > limit:
                    raise too_large(limit, "the decompressed body")
                data = decoder.unconsumed_tail
            if not message.get("more_body", False):
                out += decoder.flush()
                if len(out) > limit:
                    raise too_large(limit, "the decompressed body")
                if not decoder.eof:
                    raise _bad_encoding("the compressed data ends early")
                if decoder.unused_data:
                    raise _bad_encoding("data follows the end of the compressed stream")
                return bytes(out)
        except zlib.error as error:
            raise _bad_encoding(str(error)) from None


def _bad_encoding(problem: str) -> RequestError:
    return InvalidRequestBody(f"the body is not valid for its Content-Encoding: {problem}",
                              loc=["body"])


def timed_out(seconds: float) -> RequestTimeout:
    return RequestTimeout(f"the body did not arrive within body_timeout = {seconds:g} s",
                          loc=["body"])

