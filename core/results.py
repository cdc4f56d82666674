"""Long predictions' answers shared by every worker process: the ``local`` result store, and
how core writes an answer into a store's payload and reads it back.

**The ``local`` store** (``result_store_type = "local"``, the default) needs nothing else to
run. Where it keeps answers:

* ``hypercorn --workers N core.app:app`` and ``core serve --workers N``: in a directory shared
  by the worker processes of one server, ``core-results-<pid>-<start>`` in the temporary
  directory, named after the parent process (hypercorn's, or ``core serve``'s supervisor) and
  its start time, so new for each start of the server; those of servers that are gone are
  removed when a worker starts, as :mod:`core.metrics` does for its directory;
* one process (``core serve``, ``hypercorn core.app:app`` with its one worker,
  ``up.run_web_app()``): in memory, since no other process asks;
* ``result_store_kwargs = {directory = "..."}``: in that directory, whatever the processes
  (it must be on a local disk that every worker sees; core does not empty it).

In a directory, ``<id>.pending`` marks a prediction accepted, and ``<id>.done`` holds its answer:
written to a temporary file, then linked to its name (``os.link`` refuses a name that exists:
write-once), then the pending marker removed. Each file starts with the time it expires
(``time.time()``, one line); a file read after that is removed and answered missing, and every
:data:`SWEEP_SECONDS` a ``put`` removes the expired ones.

**Payloads.** The worker that ran a prediction writes its outcome once (:func:`encode`): the
JSON-ready result, or the :class:`~core.errors.RequestError` it failed with (class, message,
details, headers), so that a worker that did not run it answers the same JSON as the one
that did (:func:`decode`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import orjson

from core import errors
from core.components import ResultState, ResultStore
from core.errors import RequestError

#: The prefix of the directories the ``local`` store creates.
DIRECTORY_PREFIX = "core-results-"
#: Seconds between two sweeps of expired files by ``put``.
SWEEP_SECONDS = 5.0
#: The predict ids a store is asked about may come from a URL: only these name a file.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_DONE, _PENDING = ".done", ".pending"


# ---------------------------------------------------------------------------- payloads


def encode(outcome: Any) -> bytes:
    """An outcome (a JSON-ready result, or a RequestError) as a store's payload."""
    from core.http.responses import dumps

    if isinstance(outcome, RequestError):
        error = {"class": type(outcome).__name__, "status": outcome.status_code, "type": outcome.type,
                 "msg": outcome.msg, "details": outcome.details, "headers": outcome.headers}
        return dumps({"error": error})
    return dumps({"result": outcome})


def decode(payload: bytes) -> Any:
    """The result a payload holds; raises the RequestError it holds instead."""
    answer = orjson.loads(payload)
    if "error" not in answer:
        return answer["result"]
    fields = answer["error"]
    cls = getattr(errors, fields["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, RequestError)):
        cls = RequestError  # a plugin's own error class: same status and body all the same
    error = cls.__new__(cls)
    Exception.__init__(error, fields["msg"])
    error.msg, error.details, error.headers = fields["msg"], fields["details"], fields["headers"]
    if error.status_code != fields["status"]:
        error.status_code = fields["status"]
    if error.type != fields["type"]:
        error.type = fields["type"]
    return _raise(error)


def _raise(error: RequestError) -> Any:
    raise error


# ---------------------------------------------------------------------------- the local store


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, Linux), or "" when unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _lone_process() -> bool:
    """Whether no other worker process of this server can be asked for a result: no parent
    process (``core serve``, an embedding application), or hypercorn's one worker."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return True
    config = (getattr(multiprocessing.current_process(), "_kwargs", None) or {}).get("config")
    return type(config).__module__ == "hypercorn.config" and getattr(config, "workers", None) == 1


def server_directory() -> str | None:
    """The directory shared by this server's worker processes, created if need be; None for a
    process alone (see the module docstring). Directories of servers that are gone are removed."""
    if _lone_process():
        return None
    parent = multiprocessing.parent_process()
    assert parent is not None and parent.pid is not None
    base = Path(tempfile.gettempdir())
    if Path("/proc/self").exists():  # Linux: a process's directory is there while it runs
        for old in base.glob(f"{DIRECTORY_PREFIX}*-*"):
            pid = old.name[len(DIRECTORY_PREFIX):].split("-")[0]
            if pid.isdigit() and int(pid) != parent.pid and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(old, ignore_errors=True)
    path = base / f"{DIRECTORY_PREFIX}{parent.pid}-{_started(parent.pid) or 'x'}"
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)


@attrs.define
class LocalResultStore(ResultStore):
    """The ``local`` result store: every worker process of one server on one machine.

    :ivar directory: where the answers are kept; by default the server's own directory with
        several worker processes, memory with one (see :mod:`core.results`).
    """

    directory: str | None = None
    _memory: dict[str, tuple[float, bytes | None]] = attrs.field(factory=dict, init=False, repr=False)
    _swept: float = attrs.field(default=0.0, init=False, repr=False)
    _path: Path | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        directory = self.directory if self.directory is not None else server_directory()
        if directory is not None:
            self._path = Path(directory)
            try:
                self._path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ValueError(f"cannot create the directory {directory!r}: {error.strerror}") from None

    @property
    def shared(self) -> bool:
        """Whether other processes see the answers (a directory), not this process alone."""
        return self._path is not None

    async def put_pending(self, predict_id: str, ttl: float) -> None:
        """Mark ``predict_id`` running (``<id>.pending``)."""
        expires = time.time() + ttl
        if self._path is None:
            self._memory.setdefault(predict_id, (expires, None))
            return
        if not _SAFE_ID.fullmatch(predict_id):
            raise ValueError(f"predict id {predict_id!r} cannot name a file")
        with contextlib.suppress(FileExistsError):
            descriptor = os.open(self._path / f"{predict_id}{_PENDING}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(f"{expires!r}\n".encode())

    async def put(self, predict_id: str, payload: bytes, ttl: float) -> bool:
        """Write ``<id>.done`` once (a temporary file linked to its name), then remove the
        pending marker."""
        now = time.time()
        if self._path is None:
            self._sweep_memory(now)
            known = self._memory.get(predict_id)
            if known is not None and known[1] is not None:
                return False
            self._memory[predict_id] = (now + ttl, bytes(payload))
            return True
        if not _SAFE_ID.fullmatch(predict_id):
            raise ValueError(f"predict id {predict_id!r} cannot name a file")
        if now - self._swept >= SWEEP_SECONDS:
            self._sweep(now)
        done = self._path / f"{predict_id}{_DONE}"
        descriptor, temporary = tempfile.mkstemp(dir=self._path, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(f"{now + ttl!r}\n".encode())
                file.write(payload)
            try:
                os.link(temporary, done)
            except FileExistsError:
                return False
        finally:
            os.unlink(temporary)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path / f"{predict_id}{_PENDING}")
        return True

    async def get(self, predict_id: str) -> tuple[ResultState, bytes | None]:
        """Read ``<id>.done``, else ``<id>.pending``, else ``<id>.done`` again (it may have been
        written between the two reads: the marker goes only after the answer is there)."""
        now = time.time()
        if self._path is None:
            known = self._memory.get(predict_id)
            if known is None or known[0] <= now:
                return ResultState.MISSING, None
            return (ResultState.PENDING, None) if known[1] is None else (ResultState.READY, known[1])
        if not _SAFE_ID.fullmatch(predict_id):
            return ResultState.MISSING, None
        done = self._read(self._path / f"{predict_id}{_DONE}", now)
        if done is not None:
            return ResultState.READY, done
        if self._read(self._path / f"{predict_id}{_PENDING}", now) is not None:
            return ResultState.PENDING, None
        done = self._read(self._path / f"{predict_id}{_DONE}", now)
        if done is not None:
            return ResultState.READY, done
        return ResultState.MISSING, None

    async def close(self) -> None:
        """Nothing to release: the files stay for the other workers until they expire."""

    @staticmethod
    def _read(path: Path, now: float) -> bytes | None:
        """A file's content after its expiry line, or None when it is absent or expired
        (then removed)."""
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            return None
        line, _, rest = content.partition(b"\n")
        try:
            expires = float(line)
        except ValueError:
            return None
        if expires <= now:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return None
        return rest

    def _sweep(self, now: float) -> None:
        """Remove the expired files."""
        assert self._path is not None
        self._swept = now
        for path in self._path.iterdir():
            if path.suffix in (_DONE, _PENDING):
                self._read_expiry_only(path, now)

    @staticmethod
    def _read_expiry_only(path: Path, now: float) -> None:
        try:
            with open(path, "rb") as file:
                line = file.readline()
            if float(line) <= now:
                os.unlink(path)
        except (OSError, ValueError):
            pass

    def _sweep_memory(self, now: float) -> None:
        if now - self._swept < SWEEP_SECONDS:
            return
        self._swept = now
        for predict_id in [key for key, (expires, _) in self._memory.items() if expires <= now]:
            del self._memory[predict_id]
