"""Start-up fails loudly and never half-up: each mistake stops ``core serve``, ``core serve
--workers 2``, ``hypercorn --workers 0`` and plain ``hypercorn core.app:app`` with one line
naming the fix, before any HTTP answer (never a 503 for every route); ``core validate`` says
the same line. ``core serve`` announces itself only once it accepts connections, and a taken
port is one line before the model loads."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from faults import config as object_config

from core import Config
from core.errors import ConfigError
from core.testing import Server, free_port

SUPPORT = Path(__file__).parent / "support"

EXAMPLES = Path(__file__).parent.parent / "examples"
LOG_LEVELS = "must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG (any case), got 'trace'"

#: How each launcher is started (``{port}`` becomes the server's port) and the exit code it
#: gives a failed start: plain hypercorn's parent reports 0 (pgjones/hypercorn#372).
LAUNCHERS: dict[str, tuple[dict[str, Any], int | None]] = {
    "core serve": ({"command": [sys.executable, "-m", "core", "serve", "--host", "127.0.0.1",
                                "--port", "{port}"]}, 1),
    "core serve --workers 2": ({"command": [sys.executable, "-m", "core", "serve", "--host", "127.0.0.1",
                                            "--port", "{port}", "--workers", "2"]}, 1),
    "hypercorn --workers 0": ({"hypercorn_args": ["--workers", "0"]}, 1),
    "hypercorn": ({}, None),
}


def binary_config(directory: Path) -> Path:
    """A config path that names a binary file (a model, say) by mistake."""
    path = directory / "config.toml"
    path.write_bytes(b"\x08\x07\x12\x04core\x00\xff\xfe" * 64)
    return path


#: A mistake: (config, or a function of the folder giving a config path; the message naming
#: the fix; whether a traceback follows the line: a bug, not a user mistake).
MISTAKES: dict[str, tuple[Any, str, bool]] = {
    "log_level": (object_config("faults:crashing_model", log_level="trace"),
                  f"config key 'log_level' {LOG_LEVELS}", False),
    "binary config": (binary_config, "config.toml: not a text file (byte 9 is not UTF-8); a config is "
                      "TOML, JSON or YAML text", False),
    "bad key": (object_config("faults:crashing_model", mdoe="batching"),
                "unknown config key 'mdoe'; did you mean 'mode'?", False),
    "missing model": ({"storage_type": "disk", "storage_kwargs": {"path_to_files": "nowhere/model.onnx"}},
                      "storage_kwargs.path_to_files 'nowhere/model.onnx' does not exist", False),
    "a bug": (object_config("faults:crashing_model", mode="faults.BrokenArchitecture"),
              "RuntimeError: a bug in BrokenArchitecture", True),
}
NEEDS_PLUGINS = {"missing model"}  # the disk storage is a plugin


def mistakes() -> list[Any]:
    return [pytest.param(name, marks=[pytest.mark.plugins] if name in NEEDS_PLUGINS else [], id=name)
            for name in MISTAKES]


def config_of(mistake: str, directory: Path) -> Any:
    config = MISTAKES[mistake][0]
    return config(directory) if callable(config) else config


def run_watched(server: Server) -> tuple[int, str, list[int]]:
    """Run ``server`` until it exits, asking ``GET /health`` all along: its exit code, its log,
    and the status of every HTTP answer it gave (there should be none)."""
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(zip(("code", "log"), server.run_to_exit(120))))
    runner.start()
    answers = []
    with httpx.Client(timeout=5) as client:
        while runner.is_alive():
            with contextlib.suppress(httpx.TransportError):  # not listening: as it should be
                answers.append(client.get(f"{server.url}/health").status_code)
            time.sleep(0.05)
    runner.join()
    return result["code"], result["log"], answers


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("mistake", mistakes())
def test_a_mistake_stops_the_start_with_one_line(tmp_path, mistake, launcher):
    options, exit_code = LAUNCHERS[launcher]
    _config, message, bug = MISTAKES[mistake]
    server = Server(config_of(mistake, tmp_path), directory=tmp_path, pythonpath=[SUPPORT], **options)
    code, log, answers = run_watched(server)
    assert answers == [], log  # never up without its model: not even a 503
    if exit_code is not None:
        assert code == exit_code, log
    lines = [line for line in log.splitlines()
             if message in line and ("core: cannot start: " in line or line.startswith("core: error: "))]
    assert len(lines) == 1, log  # once, also with two workers
    assert ("Traceback (most recent call last)" in log) == bug, log
    if bug:  # the line first, then where the bug is
        assert log.index(message) < log.index("Traceback (most recent call last)")
    assert "continuing without Lifespan support" not in log


def core(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CORE_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, env={**environ, **(env or {})})


def write_config(directory: Path, config: Any) -> Path:
    if isinstance(config, Path):
        return config
    path = directory / "c.toml"
    path.write_text(tomli_w.dumps(config))
    return path


@pytest.mark.parametrize("mistake", mistakes())
def test_validate_says_the_same_line(tmp_path, mistake):
    _config, message, bug = MISTAKES[mistake]
    config = write_config(tmp_path, config_of(mistake, tmp_path))
    for result in (core("validate", str(config), cwd=tmp_path),
                   core("validate", cwd=tmp_path, env={"CORE_CONFIG": str(config)})):
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        while lines and re.match(r"\[[^]]+\] \[\d+\] \[INFO\] ", lines[0]):
            lines.pop(0)  # what loading logged before the mistake showed
        first, *rest = lines
        assert first.startswith("core: error: ") and message in first, result.stderr
        assert rest[:1] == (["Traceback (most recent call last):"] if bug else []), result.stderr


@pytest.mark.plugins
def test_validate_takes_a_model_path_as_serve_does(tmp_path):
    result = core("validate", str(EXAMPLES / "onnx" / "model.onnx"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{EXAMPLES / 'onnx' / 'model.onnx'}: ok (storage 'disk'")
    assert "loaded OnnxModel with binarizer 'onnx'; request: X)" in result.stdout

    (tmp_path / "notes.bin").write_bytes(b"\x00\xff not a model")
    result = core("validate", "notes.bin", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("core: error: ") and result.stderr.count("\n") == 1, result.stderr

    result = core("validate", "models/missing.onnx", cwd=tmp_path)
    assert result.stderr == "core: error: models/missing.onnx: no such config file or model path\n"


def test_log_level_takes_pythons_level_names_in_any_case():
    assert Config(log_level="debug").log_level == "debug"
    assert Config(log_level="Warning").log_level == "Warning"
    with pytest.raises(ConfigError, match=re.escape(f"config key 'log_level' {LOG_LEVELS}")):
        Config(log_level="trace")
    with pytest.raises(ConfigError, match=r"c.toml: config key 'log_level' must be one of"):
        Config.from_dict({"log_level": "verbose"}, source="c.toml")


def test_a_binary_or_unreadable_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"config.toml: not a text file \(byte 9 is not UTF-8\)"):
        Config.from_file(binary_config(tmp_path))
    nul = tmp_path / "nul.json"
    nul.write_bytes(b'{"name": "a\x00"}')
    with pytest.raises(ConfigError, match="nul.json: not a text file"):
        Config.from_file(nul)
    # a file that cannot be read, whoever asks (root reads a file without read permission)
    unreadable = tmp_path / "unreadable.toml"
    unreadable.symlink_to("/proc/self/mem")  # a regular file whose read fails
    with pytest.raises(ConfigError, match="unreadable.toml: cannot read the config file: Input/output error"):
        Config.from_file(unreadable)
    denied = tmp_path / "denied.toml"
    denied.write_text('name = "x"\n')
    denied.chmod(0)
    if not os.access(denied, os.R_OK):  # root reads it anyway: then it is simply read
        with pytest.raises(ConfigError, match="denied.toml: cannot read the config file: Permission denied"):
            Config.from_file(denied)


# ---------------------------------------------------------------------------- serving on a port


def slow_config(directory: Path, port: int) -> Path:
    """A config whose model takes a few seconds to load (``slow_import``)."""
    path = directory / "slow.toml"
    path.write_text(tomli_w.dumps({**object_config("slow_import:model"), "host": "127.0.0.1", "port": port}))
    return path


def spawn(args: list[str], directory: Path, log: Path) -> subprocess.Popen[bytes]:
    """``core ARGS`` writing its stderr to ``log``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CORE_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), environ.get("PYTHONPATH", "")])
    with log.open("wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=directory, env=environ,
                                stderr=stderr, start_new_session=True)


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one process", "two workers"])
def test_serve_announces_once_it_accepts_connections(tmp_path, workers):
    port = free_port()
    log = tmp_path / "serve.log"
    process = spawn(["serve", str(slow_config(tmp_path, port)), *workers], tmp_path, log)
    try:
        before: list[str] = []  # what each probe got before the announcement
        deadline = time.monotonic() + 120
        while "core: serving " not in log.read_text():
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            try:
                before.append(str(httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code))
            except httpx.ConnectError:
                before.append("refused")
            time.sleep(0.05)
        # Right after the line, the first request is answered.
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        lines = log.read_text().splitlines()
        announced = next(i for i, line in enumerate(lines) if line.startswith("core: serving "))
        assert lines[announced].startswith(f"core: serving 'test-model' on http://127.0.0.1:{port}")
        loaded = [i for i, line in enumerate(lines) if "model 'test-model' loaded" in line]
        assert len(loaded) == (2 if workers else 1) and max(loaded) < announced, lines
        # While the model loaded, the port refused connections (never a 503); a probe in the
        # instant between listening and the announcement may have got its 200.
        assert "refused" in before and set(before) <= {"refused", "200"}, before
    finally:
        process.terminate()
        assert process.wait(60) == 0, log.read_text()


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one process", "two workers"])
def test_a_taken_port_is_one_line_before_the_model_loads(tmp_path, workers):
    log = tmp_path / "serve.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = spawn(["serve", str(slow_config(tmp_path, port)), *workers], tmp_path, log)
        process.wait(120)
    assert process.returncode == 1
    # One line and nothing else: no model loaded (it would have logged), no traceback.
    assert log.read_text() == (f"core: error: cannot listen on 127.0.0.1:{port}: the address is already "
                               "in use (another server?); choose another --port\n")


@pytest.mark.parametrize("launcher", ["core serve", "hypercorn"])
def test_a_pod_with_service_links_of_a_core_service_starts(tmp_path, launcher):
    """Kubernetes gives a pod ``CORE_SERVICE_HOST``, ``CORE_PORT=tcp://...`` and the like for a
    Service named ``core`` in its namespace: the server starts on its own port all the same,
    and says which variable it skipped."""
    links = {"CORE_SERVICE_HOST": "10.0.0.7", "CORE_SERVICE_PORT": "8009",
             "CORE_PORT": "tcp://10.0.0.7:8009", "CORE_PORT_8009_TCP": "tcp://10.0.0.7:8009",
             "CORE_PORT_8009_TCP_PROTO": "tcp", "CORE_PORT_8009_TCP_PORT": "8009",
             "CORE_PORT_8009_TCP_ADDR": "10.0.0.7"}
    options, _ = LAUNCHERS[launcher]
    with Server(object_config("models:sum_model"), directory=tmp_path, pythonpath=[SUPPORT], env=links,
                **options) as server:
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        log = server.log()
    assert "ignoring CORE_PORT=tcp://10.0.0.7:8009: a Kubernetes service link" in log
    assert "Traceback" not in log
