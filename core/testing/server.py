"""A real ``hypercorn core.app:app`` for end-to-end tests: :class:`Server`, :class:`Servers`
and :func:`server_fixture` (see :mod:`core.testing` for how to use them)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import pytest

from core.config import CONFIG_ENV, ENV_PREFIX

# ---------------------------------------------------------------------- a real server

#: Seconds :meth:`Server.start` waits for ``GET /health`` to answer 200.
START_TIMEOUT = 60.0
#: Seconds :meth:`Server.stop` waits after SIGTERM before it kills the server.
STOP_TIMEOUT = 20.0
#: Seconds between two ``GET /health`` while a server starts.
_POLL_INTERVAL = 0.05
#: Talks to 127.0.0.1 directly, whatever ``http_proxy`` says.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

StrPath = str | os.PathLike[str]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _plain(value: Any) -> Any:
    """``value`` with every path (``pathlib.Path``...) in it made a string, for TOML."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _healthy(url: str) -> bool:
    """Whether ``GET <url>/health`` answers 200 now."""
    try:
        with _NO_PROXY.open(f"{url}/health", timeout=1) as response:
            return int(response.status) == 200
    except urllib.error.HTTPError as error:  # 503 while the model loads
        error.close()
        return False
    except (OSError, http.client.HTTPException):  # not listening yet, or cut off
        return False


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process`` and whatever is left of its process group (hypercorn's workers)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows has no process groups
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass


class Server:
    """A real ``hypercorn core.app:app`` subprocess on a free port of 127.0.0.1.

    It is started the way a user starts it: ``CORE_CONFIG`` names a config file. The server
    inherits the test's environment without its ``CORE_*`` variables (a setting of the shell
    running the tests never leaks in), runs in ``directory`` and writes its output to
    :attr:`log_path`. ``with Server(...) as server:`` starts it and stops it at the end::

        with Server({"storage_type": "zip", ...}, directory=tmp_path) as server:
            httpx.post(f"{server.url}/predict", json={"X": [[1.0]]})

    :param config: the settings as a dict, written to ``<directory>/config-<port>.toml``
        (``host`` and ``port`` say where it is served unless given; paths become strings);
        or the path of a config file to use as it is; or ``None`` for no ``CORE_CONFIG``.
    :param directory: where the config file and the log go; the server's working directory.
    :param env: more environment variables, e.g. ``{"CORE_NAME": "from-env"}``.
    :param pythonpath: folders put first on the server's ``PYTHONPATH``, for models,
        storages or plugins that the tests import by dotted path.
    :param hypercorn_args: more hypercorn arguments, e.g. ``["--graceful-timeout", "2"]``.
    :param command: the command to run instead of hypercorn (``{port}`` in an argument
        becomes the port), e.g. ``[sys.executable, "-m", "core.cli", "serve", ...]``.
    :param timeout: seconds :meth:`start` waits for ``/health`` (and :meth:`run_to_exit`
        for the exit).
    """

    def __init__(
        self,
        config: Mapping[str, Any] | StrPath | None,
        *,
        directory: StrPath,
        env: Mapping[str, str] | None = None,
        pythonpath: Sequence[StrPath] = (),
        hypercorn_args: Sequence[str] = (),
        command: Sequence[str] | None = None,
        timeout: float = START_TIMEOUT,
    ) -> None:
        if command is not None and hypercorn_args:
            raise ValueError("give either `command` or `hypercorn_args`, not both")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        #: ``http://127.0.0.1:<port>``: the base URL to talk to the server.
        self.url = f"http://127.0.0.1:{self.port}"
        #: ``127.0.0.1:<port>``, as clients such as tritonclient want it.
        self.address = f"127.0.0.1:{self.port}"
        self.config_path = self._write_config(config)
        self.log_path = self.directory / f"server-{self.port}.log"
        self.argv = self._argv(hypercorn_args, command)
        self.env = self._environment(env, pythonpath)
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None

    def _write_config(self, config: Mapping[str, Any] | StrPath | None) -> Path | None:
        if config is None:
            return None
        if not isinstance(config, Mapping):
            return Path(config).resolve()
        import tomli_w

        path = self.directory / f"config-{self.port}.toml"
        settings = {"host": "127.0.0.1", "port": self.port, **config}
        path.write_text(tomli_w.dumps(_plain(settings)))
        return path

    def _argv(self, hypercorn_args: Sequence[str], command: Sequence[str] | None) -> list[str]:
        if command is not None:
            return [arg.replace("{port}", str(self.port)) for arg in command]
        return [sys.executable, "-m", "hypercorn", "core.app:app",
                "--bind", self.address, *hypercorn_args]

    def _environment(self, env: Mapping[str, str] | None,
                     pythonpath: Sequence[StrPath]) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        if self.config_path is not None:
            environ[CONFIG_ENV] = str(self.config_path)
        paths = [*(os.fspath(p) for p in pythonpath), environ.get("PYTHONPATH", "")]
        environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        environ.update(env or {})
        return environ

    def _spawn(self) -> subprocess.Popen[bytes]:
        if self.process is not None:
            raise RuntimeError(f"the server on {self.url} was started already")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, cwd=self.directory, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self.process

    def start(self, timeout: float | None = None) -> Server:
        """Start the server and wait until ``GET /health`` answers 200; returns ``self``.

        :raises RuntimeError: with the server's log, if it exits or does not get healthy in
            ``timeout`` seconds (it is stopped then).
        """
        process = self._spawn()
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.stop()
                raise RuntimeError(f"the server exited with {process.returncode} before "
                                   f"/health answered; its log:\n{self.log()}")
            if _healthy(self.url):
                return self
            time.sleep(_POLL_INTERVAL)
        self.stop()
        raise RuntimeError(f"the server did not answer /health in {limit:g} s; its log:\n{self.log()}")

    def run_to_exit(self, timeout: float | None = None) -> tuple[int, str]:
        """Run the server until it exits by itself: its exit code and log (for start-up
        failures). Note that hypercorn reports 0 when its worker fails to start."""
        process = self._spawn()
        try:
            code = process.wait(self.timeout if timeout is None else timeout)
        finally:
            self.stop()
        return code, self.log()

    def log(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def worker_pid(self) -> int:
        """The process that runs the app: hypercorn's worker (the child it spawned), or the
        server process itself when it has none (``--workers 0``). Linux only (``/proc``)."""
        if self.process is None:
            raise RuntimeError(f"the server on {self.url} was never started")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:  # gone meanwhile
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and b"spawn_main" in command:
                return int(entry.name)
        return self.process.pid

    def peak_memory(self, pid: int | None = None) -> int:
        """The most memory, in bytes, the app's process (:meth:`worker_pid`) has held resident
        since it started (``VmHWM`` of ``/proc/<pid>/status``): what a test asserts to show
        that a request could not make the server grow. Linux only."""
        status = Path(f"/proc/{self.worker_pid() if pid is None else pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc/<pid>/status")  # pragma: no cover - not Linux

    def terminate(self) -> None:
        """Send SIGTERM (hypercorn's graceful shutdown) and return at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the server to exit; its exit code."""
        if self.process is None:
            raise RuntimeError(f"the server on {self.url} was never started")
        return self.process.wait(timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL of its process group after ``timeout`` seconds; the exit code
        (``None`` if never started). Calling it again does nothing more."""
        if self.process is None:
            return None
        self.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.process)
            self.process.wait()
        return self.process.returncode

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


class Servers:
    """Starts :class:`Server` objects in one directory with shared options, and stops them all
    at the end: the body of a pytest fixture::

        @pytest.fixture
        def serve(tmp_path):
            with Servers(tmp_path, pythonpath=[HELPERS]) as servers:
                yield servers.start

    :param directory: where every server's config file and log go.
    :param defaults: options for every :class:`Server` (``env``, ``pythonpath``...).
    """

    def __init__(self, directory: StrPath, **defaults: Any) -> None:
        self.directory = directory
        self.defaults = defaults
        self.started: list[Server] = []

    def start(self, config: Mapping[str, Any] | StrPath | None, **options: Any) -> Server:
        """Start a :class:`Server` (``options`` as it takes them, over the defaults)."""
        server = Server(config, directory=self.directory, **{**self.defaults, **options})
        self.started.append(server)
        return server.start()

    def stop(self) -> None:
        """Stop every server started, the last first."""
        while self.started:
            self.started.pop().stop()

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def server_fixture(
    *, scope: Literal["session", "package", "module", "class", "function"] = "function",
    **defaults: Any,
) -> Any:
    """A pytest fixture giving ``serve(config, **options) -> Server``: each call starts a
    :class:`Server`, and every one is stopped when the fixture's scope ends. Assign it in a
    ``conftest.py``; the name it is assigned to is the fixture's name::

        serve = server_fixture(scope="module", pythonpath=[Path(__file__).parent / "models"])

    :param defaults: options for every :class:`Server` (``env``, ``pythonpath``...).
    """

    @pytest.fixture(scope=scope)
    def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
        with Servers(tmp_path_factory.mktemp("servers"), **defaults) as servers:
            yield servers.start

    return serve
