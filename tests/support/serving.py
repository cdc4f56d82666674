"""A real ``hypercorn core.app:app`` subprocess on 127.0.0.1, for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import tomli_w

SUPPORT = Path(__file__).parent


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


#: A config serving ``support/models.py``'s objects through the dotted-path storage: core alone.
def object_config(obj: str, **extra: Any) -> dict[str, Any]:
    return {"name": "test-model", "storage_type": "components.ObjectStorage",
            "storage_kwargs": {"spec": obj}, **extra}
