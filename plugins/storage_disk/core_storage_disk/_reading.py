"""Reading a model file into memory without holding it twice, with progress for big files.

A small file is read with one ``f.read()``. A file of :data:`PROGRESS_THRESHOLD` bytes or
more is read into one preallocated ``bytearray`` through ``readinto`` on a ``memoryview``,
a chunk at a time, so that the peak is the file's size (not twice: no list of chunks joined
at the end, no ``bytes(...)`` copy), and an info line goes to the ``core`` logger at every
tenth of the way.
"""

from __future__ import annotations

import logging
import os
import time

logger = logging.getLogger("core")

#: Files at least this big log their progress while read.
PROGRESS_THRESHOLD = 64 * 1024 * 1024
#: How much one ``readinto`` asks for.
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


def read_file(path: str, *, threshold: int | None = None) -> bytes | bytearray:
    """The bytes of ``path``: ``bytes`` for a small file, a ``bytearray`` for a big one.

    Both are bytes-like objects: ``pickle.loads``, ``hashlib``, ``memoryview`` and
    ``bytes(...)`` take either.
    """
    limit = PROGRESS_THRESHOLD if threshold is None else threshold
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size < limit:
            return file.read()
        name = os.path.basename(path)
        progress = Progress("reading", name, size)
        buffer = bytearray(size)
        with memoryview(buffer) as view:
            position = 0
            while position < size:
                count = file.readinto(view[position : position + CHUNK_SIZE])
                if not count:
                    break
                position += count
                progress.advance(count)
        if position < size:
            raise OSError(f"{path} shrank from {size} to {position} bytes while being read")
        rest = file.read()  # the file grew while being read: keep what is there now
        if rest:
            buffer += rest
            progress.advance(len(rest))
        progress.finish()
        return buffer
