"""Reading big model files with progress: an info line to the ``core`` logger every tenth of the way.

For storages and binarizers that read model files of hundreds of MiB, where a silent start-up
looks like a hang. A file of :data:`PROGRESS_THRESHOLD` bytes or more logs
``<what> <name>: 30% (192.0 of 640.0 MiB)`` as it is read, and ``<what> <name>: done, ...``
at the end; a smaller file logs nothing.

* :class:`Progress` counts bytes and writes the lines;
* :func:`read_file` reads a whole file into memory without holding it twice;
* :class:`ProgressReader` wraps an open file so that whatever reads it (``pickle.load``) is
  counted;
* :func:`sha256_of` hashes an open file a chunk at a time.

:data:`PROGRESS_THRESHOLD` and :data:`CHUNK_SIZE` are looked up at each call, so tests can
lower them with ``monkeypatch.setattr(core.progress, "PROGRESS_THRESHOLD", 1000)``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import BinaryIO

logger = logging.getLogger("core")

#: Files at least this big log their progress.
PROGRESS_THRESHOLD = 64 * 1024 * 1024
#: How much one read asks for.
CHUNK_SIZE = 8 * 1024 * 1024

_MIB = 1024 * 1024

__all__ = ["CHUNK_SIZE", "PROGRESS_THRESHOLD", "Progress", "ProgressReader", "read_file", "sha256_of"]


class Progress:
    """Logs ``<what> <name>: 30% (192.0 of 640.0 MiB)`` each time another tenth is done.

    :param what: the verb of the lines (``"reading"``, ``"hashing"``, ``"unpickling"``).
    :param name: what is read, usually the file's name.
    :param total: the number of bytes to expect; ``0`` or less logs no percentage.
    """

    def __init__(self, what: str, name: str, total: int) -> None:
        self.what = what
        self.name = name
        self.total = total
        self.done = 0
        self._next = 10
        self._started = time.perf_counter()

    def advance(self, count: int) -> None:
        """Count ``count`` more bytes; log a line if that crosses the next tenth."""
        self.done += count
        if self.total <= 0:
            return
        percent = self.done * 100 // self.total
        if percent >= self._next and self.done < self.total:
            logger.info(
                "%s %s: %d%% (%.1f of %.1f MiB)",
                self.what, self.name, percent, self.done / _MIB, self.total / _MIB,
            )
            self._next = (percent // 10 + 1) * 10

    def finish(self) -> None:
        """Log the ``done`` line: the bytes counted and the seconds since the start."""
        elapsed = time.perf_counter() - self._started
        logger.info("%s %s: done, %.1f MiB in %.1fs", self.what, self.name, self.done / _MIB, elapsed)


def read_file(path: str, *, threshold: int | None = None) -> bytes | bytearray:
    """The bytes of ``path``: ``bytes`` for a small file, a ``bytearray`` for a big one.

    A small file is read with one ``f.read()``. A file of ``threshold`` (default
    :data:`PROGRESS_THRESHOLD`) bytes or more is read into one preallocated ``bytearray``
    through ``readinto`` on a ``memoryview``, :data:`CHUNK_SIZE` at a time, so that the peak
    is the file's size (not twice: no list of chunks joined at the end, no ``bytes(...)``
    copy), and its progress is logged as ``reading <file name>``.

    Both results are bytes-like objects: ``pickle.loads``, ``hashlib``, ``memoryview`` and
    ``bytes(...)`` take either.

    :raises OSError: if the file cannot be read, or shrinks while it is read.
    """
    limit = PROGRESS_THRESHOLD if threshold is None else threshold
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size < limit:
            return file.read()
        progress = Progress("reading", os.path.basename(path), size)
        buffer = bytearray(size)
        position = _read_into(file, buffer, progress)
        if position < size:
            raise OSError(f"{path} shrank from {size} to {position} bytes while being read")
        rest = file.read()  # the file grew while being read: keep what is there now
        if rest:
            buffer += rest
            progress.advance(len(rest))
        progress.finish()
        return buffer


def _read_into(file: BinaryIO, buffer: bytearray, progress: Progress) -> int:
    """Fill ``buffer`` from ``file`` a chunk at a time; the number of bytes read (fewer than
    ``len(buffer)`` if the file ends first)."""
    size = len(buffer)
    position = 0
    with memoryview(buffer) as view:
        while position < size:
            count = file.readinto(view[position : position + CHUNK_SIZE])  # type: ignore[attr-defined]
            if not count:
                break
            position += count
            progress.advance(count)
    return position


class ProgressReader:
    """A read-only file object that reports every byte read to a :class:`Progress`.

    It passes ``read``/``readinto``/``readline``/``peek`` straight to the file, so unpickling
    through it still reads big buffers (numpy arrays of a protocol-5 pickle) in place.
    """

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
    """The hex SHA-256 of ``file`` from its current position, read :data:`CHUNK_SIZE` at a time.

    ``size`` is the number of bytes to expect: at ``threshold`` (default
    :data:`PROGRESS_THRESHOLD`) or more, the progress is logged as ``hashing <name>``.
    """
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
