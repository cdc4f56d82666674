"""Shared fixtures: a real ``hypercorn core.app:app`` on 127.0.0.1, talked to with httpx."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

SUPPORT = Path(__file__).parent / "support"
sys.path.insert(0, str(SUPPORT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A hypercorn subprocess serving ``core.app:app`` with a given config."""

    def __init__(self, config: dict[str, Any], tmp: Path, env: dict[str, str] | None = None,
                 pythonpath: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = tmp / f"config-{self.port}.toml"
        self.config_path.write_text(tomli_w.dumps(config))
        self.log_path = tmp / f"server-{self.port}.log"
        paths = [str(SUPPORT), *(pythonpath or []), os.environ.get("PYTHONPATH", "")]
        self.env = {**os.environ, "CORE_CONFIG": str(self.config_path),
                    "PYTHONPATH": os.pathsep.join(p for p in paths if p), **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Server:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", "core.app:app", "--bind", f"127.0.0.1:{self.port}"],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def run_to_exit(self, timeout: float = 60) -> tuple[int, str]:
        """Start and wait for the process to exit (for start-up failures)."""
        with self.log_path.open("wb") as log:
            proc = subprocess.run(
                [sys.executable, "-m", "hypercorn", "core.app:app", "--bind", f"127.0.0.1:{self.port}"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
            )
        return proc.returncode, self.log()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """``serve(config_dict, env=..., pythonpath=...)`` starts a server and returns it."""
    servers: list[Server] = []

    def start(config: dict[str, Any], **kwargs: Any) -> Server:
        server = Server(config, tmp_path, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Any:
    """Build a Server without starting it (for start-up failure tests)."""
    return lambda config, **kw: Server(config, tmp_path, **kw)


#: A config serving ``support/models.py``'s objects through the dotted-path storage: core alone.
def object_config(obj: str, **extra: Any) -> dict[str, Any]:
    return {"name": "test-model", "storage_type": "components.ObjectStorage",
            "storage_kwargs": {"spec": obj}, **extra}
