"""``core.testing.Server``: the real server the end-to-end tests (and plugin authors) start."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest
from serving import object_config

from core.config import Config
from core.testing import Server, Servers, free_port

SUPPORT = Path(__file__).parent / "support"


def test_free_port_is_free() -> None:
    port = free_port()
    assert 0 < port < 65536


def test_a_config_dict_is_written_as_toml_with_where_it_serves(tmp_path: Path) -> None:
    server = Server({"name": "m", "storage_kwargs": {"path": tmp_path / "model.bin"}},
                    directory=tmp_path)
    assert server.config_path == tmp_path / f"config-{server.port}.toml"
    conf = Config.from_file(str(server.config_path))
    assert (conf.name, conf.host, conf.port) == ("m", "127.0.0.1", server.port)
    assert conf.storage_kwargs == {"path": str(tmp_path / "model.bin")}
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.address == f"127.0.0.1:{server.port}"


def test_a_config_path_is_used_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('name = "m"\n')
    server = Server(path, directory=tmp_path)
    assert server.config_path == path
    assert server.env["CORE_CONFIG"] == str(path)
    assert Server(None, directory=tmp_path).config_path is None


def test_the_environment_drops_the_shells_core_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORE_NAME", "from-the-shell")
    monkeypatch.setenv("PYTHONPATH", "/already")
    server = Server(None, directory=tmp_path, env={"CORE_DEBUG": "true"},
                    pythonpath=[tmp_path / "a", "b"])
    assert "CORE_NAME" not in server.env and "CORE_CONFIG" not in server.env
    assert server.env["CORE_DEBUG"] == "true"
    assert server.env["PYTHONPATH"] == os.pathsep.join([str(tmp_path / "a"), "b", "/already"])


def test_the_command(tmp_path: Path) -> None:
    server = Server({}, directory=tmp_path, hypercorn_args=["--graceful-timeout", "2"])
    assert server.argv == [sys.executable, "-m", "hypercorn", "core.app:app",
                           "--bind", server.address, "--graceful-timeout", "2"]
    other = Server(None, directory=tmp_path, command=["core", "serve", "--port", "{port}"])
    assert other.argv == ["core", "serve", "--port", str(other.port)]
    with pytest.raises(ValueError, match="not both"):
        Server(None, directory=tmp_path, command=["x"], hypercorn_args=["y"])


def test_start_serves_and_stop_ends_it(tmp_path: Path) -> None:
    with Server(object_config("models:sum_model"), directory=tmp_path,
                pythonpath=[SUPPORT]) as server:
        assert httpx.post(f"{server.url}/predict", json={"X": [[1, 2]]}).json() == {
            "predict_result": [3.0]}
        with pytest.raises(RuntimeError, match="started already"):
            server.start()
    assert server.process is not None and server.process.poll() is not None
    assert server.stop() == server.process.returncode  # again: nothing more to do
    assert "Running on" in server.log()


def test_a_server_that_cannot_start_raises_with_its_log(tmp_path: Path) -> None:
    server = Server({"storage_type": "nowhere"}, directory=tmp_path, timeout=10)
    with pytest.raises(RuntimeError) as caught:
        server.start()
    message = str(caught.value)
    assert "unknown storage 'nowhere'" in message
    assert server.process is not None and server.process.poll() is not None


def test_servers_stops_every_server(tmp_path: Path) -> None:
    with Servers(tmp_path, pythonpath=[SUPPORT]) as servers:
        first = servers.start(object_config("models:sum_model"))
        second = servers.start(object_config("models:sum_model"), env={"CORE_NAME": "second"})
        assert httpx.get(f"{second.url}/info").json()["name"] == "second"
        assert first.port != second.port
    assert all(s.process is not None and s.process.poll() is not None for s in (first, second))
    assert servers.started == []


def test_never_started(tmp_path: Path) -> None:
    server = Server(None, directory=tmp_path)
    assert server.stop() is None
    with pytest.raises(RuntimeError, match="never started"):
        server.wait()
