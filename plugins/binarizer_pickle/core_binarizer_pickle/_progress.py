"""Progress lines for big model files, and a file wrapper that counts what is read.

A file of :data:`PROGRESS_THRESHOLD` bytes or more logs an info line to the ``core`` logger
at every tenth of the way, both while it is hashed and while it is unpickled. The wrapper
passes ``read``/``readinto``/``readline``/``peek`` straight to the file, so unpickling
through it still reads big buffers (numpy arrays of a protocol-5 pickle) in place.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import BinaryIO

logger = logging.getLogger("core")

#: Files at least this big log their progress.
PROGRESS_THRESHOLD = 64 * 1024 * 1024
#: How much one read asks for while hashing.
CHUNK_SIZE = 8 * 1024 * 1024

_MIB = 1024 * 1024


class Progress:
    """Logs ``<what> <name>: 30% (192.0 of 640.0 MiB)`` each time another tenth is done."""

    def __init__(self, what: str, name: str, total: int) -> None:
        self.what = what
        self.name = name
        self.total = total
        self.done = 0
        self._next = 10
        self._started = time.perf_counter()

    def advance(self, count: int) -> None:
        self.done += count
        if self.total <= 0:
            return
        percent = self.done * 100 // self.total
        if percent >= self._next and self.done < self.total:
            logger.info(
                "%s %s: %d%% (%.1f of %.1f MiB)",
                self.what,
                self.name,
                percent,
                self.done / _MIB,
                self.total / _MIB,
            )
            self._next = (percent // 10 + 1) * 10

    def finish(self) -> None:
        elapsed = time.perf_counter() - self._started
        logger.info(
            "%s %s: done, %.1f MiB in %.1fs", self.what, self.name, self.done / _MIB, elapsed
        )


class ProgressReader:
    """A read-only file object that reports every byte read to a :class:`Progress`."""

    def __init__(self, file: BinaryIO, progress: Progress) -> None:
        self._file = file
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._progress.advance(len(data))
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = self._file.readinto(buffer)  # type: ignore[attr-defined]
        self._progress.advance(count or 0)
        return int(count or 0)

    def readline(self, size: int = -1) -> bytes:
        line = self._file.readline(size)
        self._progress.advance(len(line))
        return line

    def peek(self, size: int = 0) -> bytes:
        return self._file.peek(size)  # type: ignore[attr-defined]


def sha256_of(file: BinaryIO, size: int, name: str, *, threshold: int | None = None) -> str:
    """The hex SHA-256 of ``file`` from its current position, read a chunk at a time."""
    limit = PROGRESS_THRESHOLD if threshold is None else threshold
    progress = Progress("hashing", name, size) if size >= limit else None
    digest = hashlib.sha256()
    buffer = bytearray(min(CHUNK_SIZE, max(size, 1)))
    with memoryview(buffer) as view:
        while True:
            count = file.readinto(view)  # type: ignore[attr-defined]
            if not count:
                break
            digest.update(view[:count])
            if progress is not None:
                progress.advance(count)
    if progress is not None:
        progress.finish()
    return digest.hexdigest()
