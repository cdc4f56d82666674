"""A real server for each test module: ``hypercorn core.app:app`` on loopback, started the way a
user starts it (``CORE_CONFIG`` naming a TOML file), stopped at the end."""

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


class Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.address = f"127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(tmp: Path, config: dict[str, Any], env: dict[str, str] | None = None,
                 pythonpath: list[Path] = ()) -> Server:  # type: ignore[assignment]
    port = free_port()
    config_file = tmp / f"config-{port}.toml"
    config_file.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in
                                   {"host": "127.0.0.1", "port": port, **config}.items()))
    log = tmp / f"server-{port}.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CORE_")}
    environ["CORE_CONFIG"] = str(config_file)
    environ["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in pythonpath),
                                             environ.get("PYTHONPATH", "")])
    environ.update(env or {})
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", "core.app:app", "--bind", f"127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, env=environ, cwd=tmp,
        )
    server = Server(process, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{server.output()}")
        try:
            if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the server did not start in 60s:\n{server.output()}")


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """``serve(config, pythonpath=[...])`` starts a server; all are stopped at module end."""
    servers: list[Server] = []
    tmp = tmp_path_factory.mktemp("servers")

    def start(config: dict[str, Any], **kwargs: Any) -> Server:
        server = start_server(tmp, config, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
