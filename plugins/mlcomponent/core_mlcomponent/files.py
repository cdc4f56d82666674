"""The exchange folder: where uploaded inputs are saved and FILE outputs are collected.

Rules, all enforced here:

* Every file the server hands out lives directly in the folder under a generated name,
  ``<32 hex digits>-<cleaned original name>``. A client's file name is only ever a hint: it is
  cut to its last component and to the characters ``A-Za-z0-9._-``, so ``../../etc/passwd``
  becomes ``<hex>-passwd`` inside the folder.
* A path coming from outside (a client naming an exchanged file, an output path the function
  returns) is resolved, symlinks included, and refused when it is not inside the folder.
* Only generated names can be downloaded, so links cannot be guessed.
* Generated files older than ``ttl`` seconds are deleted by a background sweeper, and are
  refused at download even before the sweeper runs.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
import weakref
from pathlib import Path

logger = logging.getLogger("core")

#: The names the server generates (and the only ones it serves).
NAME = re.compile(r"^[0-9a-f]{32}(?:-[A-Za-z0-9._-]{1,120})?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class OutsideFolder(ValueError):
    """A path that resolves outside the exchange folder."""


def clean_name(hint: str | None) -> str:
    """The last component of ``hint``, with only safe characters (may be empty)."""
    if not hint:
        return ""
    last = re.split(r"[\\/]", hint)[-1]
    return _UNSAFE.sub("_", last).lstrip(".")[-120:]


class FileExchange:
    """One exchange folder with its time-to-live."""

    def __init__(self, folder: str | os.PathLike[str], ttl: float) -> None:
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
        """A fresh generated path in the folder (the file is not created)."""
        name = uuid.uuid4().hex
        cleaned = clean_name(hint)
        return self.root / (f"{name}-{cleaned}" if cleaned else name)

    def save(self, content: bytes, hint: str | None = None) -> Path:
        path = self.new_path(hint)
        with open(path, "xb") as file:
            file.write(content)
        return path

    def inside(self, path: str | os.PathLike[str]) -> Path:
        """``path`` (absolute, or relative to the folder) resolved; refused outside it."""
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        resolved = candidate.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise OutsideFolder(f"{str(path)!r} is outside the exchange folder")
        return resolved

    def adopt(self, path: str | os.PathLike[str]) -> str:
        """Take a file the function wrote: check it is inside the folder, give it a generated
        name (moving it) unless it has one, and return that name."""
        resolved = self.inside(path)
        if not resolved.is_file():
            raise FileNotFoundError(f"{str(path)!r} does not exist")
        if resolved.parent == self.root and NAME.match(resolved.name):
            return resolved.name
        target = self.new_path(resolved.name)
        os.replace(resolved, target)
        return target.name

    def lookup(self, name: str) -> Path | None:
        """The file for a generated ``name``, or ``None`` (unknown, not generated, expired)."""
        if not NAME.match(name):
            return None
        path = self.root / name
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return None
        if not path.is_file():
            return None
        if age > self.ttl:
            self._unlink(path)
            return None
        return path

    def from_reference(self, reference: str) -> Path:
        """A client's reference to an exchanged file: a generated name, a ``/files/<name>``
        link, or a path inside the folder. Raises ``OutsideFolder`` or ``FileNotFoundError``."""
        if "/files/" in reference:
            reference = reference.rsplit("/files/", 1)[1]
        path = self.inside(reference)
        if not path.is_file():
            raise FileNotFoundError(f"no exchanged file {reference!r} (expired?)")
        return path

    # ------------------------------------------------------------------ expiry

    def sweep(self) -> int:
        """Delete generated files older than the ttl; return how many."""
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
                if entry.is_file() and now - entry.stat().st_mtime > self.ttl:
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
        self._stop.set()
