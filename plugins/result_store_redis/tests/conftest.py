"""A real ``redis-server`` on a free port of 127.0.0.1 (no persistence), started once for the
tests, and core servers (real hypercorn) that serve :mod:`slow_models`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from core.testing import Server, Servers, free_port

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # slow_models, for the servers' dotted-path storage


def _answers(port: int) -> bool:
    """Whether a Redis on ``port`` answers PING now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a ``redis-server`` started for these tests."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def core_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``core_server(config)`` -> a started hypercorn serving ``config``, stopped at the end."""
    with Servers(tmp_path, pythonpath=[HERE]) as servers:

        def start(config: dict[str, Any], *hypercorn_args: str) -> Server:
            return servers.start(config, hypercorn_args=hypercorn_args)

        yield start
