"""Clients as an attacker writes them, for the admission gate's tests: bodies that never end,
bodies that trickle in a byte at a time, small gzip bodies that inflate to hundreds of MiB. Each
is built while it is sent, so the test process itself stays small; ``Server.peak_memory()``
reads the worker's peak resident memory from ``/proc``.
"""

from __future__ import annotations

import select
import socket
import time
import zlib
from collections.abc import Iterator

from core.testing import Server

MiB = 1024 * 1024
#: The most a worker may hold, whatever it is sent (it starts at ~120 MB with numpy loaded).
MEMORY_BOUND = 200 * 1000 * 1000


def streamed(head: bytes, filler: bytes, total: int, tail: bytes, server: Server) -> Iterator[bytes]:
    """``head``, then ``filler`` repeated up to ``total`` bytes, then ``tail``: a body for
    ``httpx``'s ``content=`` (sent chunked, with no Content-Length). It stops with an
    AssertionError as soon as the worker's peak memory passes :data:`MEMORY_BOUND`, so a
    server without a limit fails the test instead of swallowing gigabytes."""
    yield head
    sent = 0
    while sent < total:
        peak = server.peak_memory()
        assert peak < MEMORY_BOUND, f"the worker grew to {peak / MiB:.0f} MiB after {sent / MiB:.0f} MiB sent"
        yield filler
        sent += len(filler)
    yield tail


def gzip_bomb(head: bytes, filler: bytes, count: int, tail: bytes, method: str = "gzip") -> bytes:
    """``head + filler * count + tail``, compressed as ``method`` (gzip or deflate) while it is
    built: 1 MiB of a repeated byte compresses to about 1 KiB, so 600 MiB fit in ~600 KiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16 if method == "gzip" else zlib.MAX_WBITS)
    parts = [compressor.compress(head)]
    parts += [compressor.compress(filler) for _ in range(count)]
    parts += [compressor.compress(tail), compressor.flush()]
    return b"".join(parts)


class Trickle:
    """A raw connection that sends a request's headers, then its body one byte per
    :meth:`tick`: the slow client no ``httpx`` would be. The body is announced with a large
    ``Content-Length``, or sent ``chunked`` (a one-byte chunk per tick)."""

    def __init__(self, server: Server, path: str, length: int = 1_000_000, chunked: bool = False,
                 content_type: str = "application/json") -> None:
        self.chunked = chunked
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {server.address}\r\nContent-Type: {content_type}\r\n"
            f"{framing}\r\n\r\n".encode() + self._piece(b'{"X": [[1')
        )
        self.received = b""
        self.closed = False  # the server closed its side (EOF)

    def _piece(self, data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data

    def tick(self) -> None:
        """Read what the server sent; if it answered, send nothing more, else one more byte."""
        self.read(timeout=0)
        if self.received or self.closed:
            return
        try:
            self.sock.sendall(self._piece(b","))
        except OSError:  # the server closed the connection meanwhile: its answer is readable
            self.read(timeout=1)

    def read(self, timeout: float) -> None:
        """Read what arrives within ``timeout`` seconds (until EOF at most)."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = max(0.0, deadline - time.monotonic())
            if not select.select([self.sock], [], [], left)[0]:
                return
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:  # what was not read yet is lost
                chunk = b""
            if not chunk:
                self.closed = True
                return
            self.received += chunk

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """The status, headers (lower-case names) and body the server sent."""
        assert self.received, "the server sent nothing on this connection"
        head, _, body = self.received.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        self.sock.close()
