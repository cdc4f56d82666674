"""The exchange folder: where uploaded inputs are saved and FILE outputs are collected.

The rules of the folder boundary, all enforced here (and in ``model.py`` where a request is
read, so they hold on ``POST /inference``, ``POST /predict`` and V2 ``infer`` alike):

1. **Only FILE values name files.** A value is a file reference when its datatype is ``FILE``:
   the datatype the request gives, or, when it gives none, the one the function's docstring
   declares. Every other value (``str``, numbers, ``parameters``) is data: the server never
   opens, reads or writes it, whatever it looks like. A request whose datatype contradicts the
   docstring is refused, so a function that trusts its specification only opens FILE values.
   (A function that opens a ``str`` value itself does so on its own account.)
2. **A reference must be a regular file inside the folder, reached without symlinks.** A
   reference is a generated name, a ``/files/<name>`` link, or a path (absolute, or relative to
   the folder). It is checked lexically first (no ``..``, under the folder), then opened one
   component at a time from the folder with ``O_NOFOLLOW``: a symlink anywhere on the way (file
   or directory, pointing out of the folder or back into it) is refused, and so are directories,
   FIFOs, devices, files with more than one hard link, and generated files older than the ttl.
   What the function receives is the path the server checked, never the client's spelling.
3. **Refusals say nothing about the outside.** Every refused reference gets the same message
   (:class:`Refused`), whether the path exists, is missing, is a symlink, or is outside the
   folder; paths outside the folder are refused without being looked at.
4. **Outputs are written where the server says.** A FILE output gets a fresh generated path
   (``<32 random hex digits>-<name>``) that no other request can know in advance; a client
   cannot choose an output path (``output_fields[].data`` is refused), so no request can
   overwrite another's output; just before the function runs, each output path is checked to
   be still free. A FILE output the function returns (FILE by its own datatype, the request's
   or the docstring's) is checked as in rule 2 and moved to a generated name unless it has one.
5. **Uploads get generated names.** A client's file name is only a hint: it is cut to its last
   component and to the characters ``A-Za-z0-9._-``, so ``../../etc/passwd`` becomes
   ``<hex>-passwd`` inside the folder; the file is created with ``O_EXCL`` (never through a
   symlink, never over an existing file).
6. **Downloads serve only what the server made.** ``GET /files/{name}`` serves a file only when
   ``name`` is a generated name and the file is a regular file (opened with ``O_NOFOLLOW``),
   with one link, owned by the server's user, and younger than the ttl; it is read from the
   very descriptor that was checked. Anything else is 404, with one message.
7. **Expiry.** Generated files older than ``ttl`` seconds are deleted by a background sweeper
   (regular files only; a symlink is never followed nor removed), and refused even before
   the sweeper runs.

These rules need a POSIX system (``O_NOFOLLOW``, ``O_DIRECTORY`` and ``dir_fd``). What they
cannot cover: the function opens the paths it is given itself, so a file that a process with
write access to the folder swaps for a symlink between the check and that open is followed by
the function. Neither the server nor a client can create a symlink there.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

logger = logging.getLogger("core")

#: The names the server generates (and the only ones it serves).
NAME = re.compile(r"^[0-9a-f]{32}(?:-[A-Za-z0-9._-]{1,120})?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
#: What the rules need of the system (Linux, macOS and the BSDs have it; Windows does not).
POSIX = bool(_NOFOLLOW and _DIRECTORY and _NONBLOCK) and {os.open, os.rename} <= os.supports_dir_fd
_DIR_FLAGS = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC  # NONBLOCK: a FIFO never hangs
_CHUNK = 64 * 1024


class Refused(ValueError):
    """A reference that names no usable file of the exchange folder.

    The message is the same whatever the reason (outside the folder, missing, a symlink, not a
    regular file, expired), so a refusal never tells what exists outside the folder."""

    def __init__(self, reference: object) -> None:
        super().__init__(f"{str(reference)!r} is not a file in the exchange folder (a regular file "
                         f"there, reached without symlinks, not expired)")
        self.reference = reference



def clean_name(hint: str | None) -> str:
    """The last component of ``hint``, with only safe characters (may be empty)."""
    if not hint:
        return ""
    last = re.split(r"[\\/]", hint)[-1]
    return _UNSAFE.sub("_", last).lstrip(".")[-120:]


class FileExchange:
    """One exchange folder with its time-to-live (see the module docstring for the rules)."""

    def __init__(self, folder: str | os.PathLike[str], ttl: float) -> None:
        if not POSIX:
            raise ValueError("the exchange folder's checks need a POSIX system (O_NOFOLLOW, O_DIRECTORY, "
                             "dir_fd), which this one is not")
        path = Path(folder).expanduser()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cannot create the exchange folder {path}: {error}") from None
        self.root = path.resolve()
        self.ttl = float(ttl)
        self._sweeper: threading.Thread | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ names and paths

    def new_path(self, hint: str | None = None) -> Path:
        """A fresh generated path in the folder (the file is not created): 122 random bits, so
        no request can know or choose another's."""
        name = uuid.uuid4().hex
        cleaned = clean_name(hint)
        return self.root / (f"{name}-{cleaned}" if cleaned else name)

    def save(self, content: bytes, hint: str | None = None) -> Path:
        """Write ``content`` to a new generated file (``O_EXCL``: never over anything)."""
        path = self.new_path(hint)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666)
        with open(fd, "wb") as file:
            file.write(content)
        return path

    def is_fresh(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` is a generated path directly in the folder that nothing occupies
        yet: where the server lets a function write an output."""
        candidate = PurePosixPath(os.fspath(path))
        if candidate.parent != PurePosixPath(self.root) or not NAME.match(candidate.name):
            return False
        try:
            os.lstat(self.root / candidate.name)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return False

    def parts(self, reference: str) -> tuple[str, ...]:
        """The components under the folder that ``reference`` names, decided without touching
        the file system. A ``/files/<name>`` link (or a URL ending so) names a generated file;
        an absolute path must lie under the folder; anything else is relative to it.

        :raises Refused: outside the folder, ``..`` anywhere, empty, or not a path at all.
        """
        if not isinstance(reference, str) or not reference or "\0" in reference:
            raise Refused(reference)
        link = None
        if "://" in reference:
            link = unquote(urlsplit(reference).path)
        elif reference.startswith("/files/") and not reference.startswith(f"{self.root}/"):
            link = reference
        if link is not None:
            _, found, name = link.rpartition("/files/")
            if not found or not NAME.match(name):
                raise Refused(reference)
            return (name,)
        path = PurePosixPath(reference)
        if path.is_absolute():
            root = PurePosixPath(self.root)
            if path.parts[: len(root.parts)] != root.parts:
                raise Refused(reference)
            path = PurePosixPath(*path.parts[len(root.parts):]) if len(path.parts) > len(root.parts) \
                else PurePosixPath()
        parts = tuple(p for p in path.parts if p not in ("", "."))
        if not parts or ".." in parts:
            raise Refused(reference)
        return parts

    def _open(self, parts: tuple[str, ...], reference: object) -> tuple[int, int]:
        """``(parent directory fd, file fd)`` for ``parts``, walking from the folder with
        ``O_NOFOLLOW`` on every component; the file is a regular file with one link."""
        try:
            directory = os.open(self.root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
        except OSError:
            raise Refused(reference) from None
        fd = -1
        try:
            for part in parts[:-1]:
                inner = os.open(part, _DIR_FLAGS, dir_fd=directory)
                os.close(directory)
                directory = inner
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=directory)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                raise Refused(reference)
            if NAME.match(parts[-1]) and time.time() - info.st_mtime > self.ttl:
                raise Refused(reference)
            os.set_blocking(fd, True)
        except (OSError, Refused):
            if fd >= 0:
                os.close(fd)
            os.close(directory)
            raise Refused(reference) from None
        return directory, fd

    def reference(self, reference: str) -> Path:
        """The file a client's ``reference`` names (see :meth:`parts`), checked by opening it.

        :raises Refused: for every reason, with one message.
        """
        parts = self.parts(reference)
        directory, fd = self._open(parts, reference)
        os.close(fd)
        os.close(directory)
        return self.root.joinpath(*parts)

    def adopt(self, path: object) -> str:
        """Take a FILE output the function returned: check it as a reference (a regular file
        in the folder, no symlinks), move it to a generated name unless it has one, and
        return that name.

        :raises Refused: for every reason, with one message.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise Refused(path)
        text = os.fspath(path)
        parts = self.parts(text if isinstance(text, str) else text.decode(errors="replace"))
        directory, fd = self._open(parts, text)
        os.close(fd)
        try:
            if len(parts) == 1 and NAME.match(parts[0]):
                return parts[0]
            target = self.new_path(parts[-1]).name
            root = os.open(self.root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
            try:
                os.rename(parts[-1], target, src_dir_fd=directory, dst_dir_fd=root)
            except OSError:
                raise Refused(text) from None
            finally:
                os.close(root)
            return target
        finally:
            os.close(directory)

    def open_generated(self, name: str) -> BinaryIO | None:
        """The file for a generated ``name``, open for reading, or ``None`` (not a generated
        name, missing, a symlink, not a regular file, another link to it exists, owned by
        another user, or expired). The caller closes it."""
        if not isinstance(name, str) or not NAME.match(name):
            return None
        try:
            directory, fd = self._open((name,), name)
        except Refused:
            return None
        os.close(directory)
        if os.fstat(fd).st_uid != os.geteuid():
            os.close(fd)
            return None
        return open(fd, "rb")

    def read(self, name: str) -> bytes | None:
        """The content of the generated file ``name`` (see :meth:`open_generated`), or ``None``."""
        file = self.open_generated(name)
        if file is None:
            return None
        with file:
            return file.read()

    @staticmethod
    def chunks(file: BinaryIO) -> Iterator[bytes]:
        """``file``'s content in chunks, closing it at the end (or when the reader stops)."""
        with file:
            while chunk := file.read(_CHUNK):
                yield chunk

    # ------------------------------------------------------------------ expiry

    def sweep(self) -> int:
        """Delete generated regular files older than the ttl; return how many."""
        removed = 0
        now = time.time()
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return 0
        for entry in entries:
            if not NAME.match(entry.name):
                continue
            try:
                if entry.is_file(follow_symlinks=False) and \
                        now - entry.stat(follow_symlinks=False).st_mtime > self.ttl:
                    removed += self._unlink(Path(entry.path))
            except OSError:
                continue
        return removed

    @staticmethod
    def _unlink(path: Path) -> int:
        try:
            path.unlink()
            return 1
        except OSError:
            return 0

    def start_sweeper(self) -> None:
        """Sweep in a daemon thread every ``ttl / 4`` seconds (at least 0.25, at most 60)."""
        if self._sweeper is not None:
            return
        interval = min(max(self.ttl / 4, 0.25), 60.0)
        ref = weakref.ref(self)
        stop = self._stop

        def run() -> None:
            while not stop.wait(interval):
                exchange = ref()
                if exchange is None:
                    return
                count = exchange.sweep()
                if count:
                    logger.info("exchange folder: %d expired file(s) deleted", count)
                del exchange

        self._sweeper = threading.Thread(target=run, name="core-mlcomponent-sweeper", daemon=True)
        self._sweeper.start()

    def stop_sweeper(self) -> None:
        """Stop the sweeper thread (it ends at its next wake-up)."""
        self._stop.set()
