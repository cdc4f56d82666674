"""A real ``hypercorn core.app:app`` on 127.0.0.1 for the architecture tests.

``arch_server(config, *hypercorn_args)`` writes ``config`` to a TOML file, starts hypercorn
with ``CORE_CONFIG`` pointing at it and ``PYTHONPATH`` including ``helpers/`` (so
``storage_type = "arch_models.ModelStorage"`` works with core alone), waits for ``/health``
and returns a :class:`RunningServer` (``.url``). Every server is stopped (SIGTERM, then
SIGKILL of its process group) when the test ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

HELPERS = Path(__file__).parent / "helpers"
sys.path.insert(0, str(HELPERS))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningServer:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path,
                 log_file: Any) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path
        self._log_file = log_file

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        """SIGTERM: hypercorn's graceful shutdown."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log_file.close()


def start_server(config: dict[str, Any], tmp_path: Path, *hypercorn_args: str,
                 timeout: float = 60) -> RunningServer:
    port = free_port()
    config_path = tmp_path / f"config-{port}.toml"
    config_path.write_text(tomli_w.dumps(config))
    log_path = tmp_path / f"server-{port}.log"
    log_file = log_path.open("wb")
    paths = [str(HELPERS), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "CORE_CONFIG": str(config_path),
           "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    process = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "core.app:app", "--bind", f"127.0.0.1:{port}",
         *hypercorn_args],
        env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
    )
    server = RunningServer(process, f"http://127.0.0.1:{port}", log_path, log_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(f"the server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"the server did not answer /health in {timeout} s:\n{server.log()}")


@pytest.fixture
def arch_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """``arch_server(config_dict, *hypercorn_args)`` -> a started :class:`RunningServer`."""
    servers: list[RunningServer] = []

    def start(config: dict[str, Any], *hypercorn_args: str) -> RunningServer:
        server = start_server(config, tmp_path, *hypercorn_args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
