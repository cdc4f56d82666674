"""core under each HTTP server it supports, end to end: ``core serve --server hypercorn|uvicorn``
and the servers run directly (``hypercorn core.app:app``, ``uvicorn core.app:app``, ``granian
--interface asgi core.app:app``). The same start-up (never serving without the model; exit
code 1 and one line), ``/predict``, the gate's limits on a body that streams in (413 chunked,
408 slow), and the graceful shutdown with requests in flight. The worker processes under each
server are in ``tests/test_supervisor.py``.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from serving import object_config

from core.cli import main

MiB = 1024 * 1024
SERVE = [sys.executable, "-m", "core", "serve", "--host", "127.0.0.1", "--port", "{port}"]
#: How each server is started: by ``core serve``, or directly as its users run it.
COMMANDS = {
    "core serve --server hypercorn": [*SERVE, "--server", "hypercorn"],
    "core serve --server uvicorn": [*SERVE, "--server", "uvicorn"],
    "hypercorn core.app:app": [sys.executable, "-m", "hypercorn", "core.app:app", "--bind", "127.0.0.1:{port}"],
    "uvicorn core.app:app": [sys.executable, "-m", "uvicorn", "core.app:app", "--host", "127.0.0.1",
                             "--port", "{port}"],
    "granian core.app:app": [sys.executable, "-m", "granian", "--interface", "asgi", "core.app:app",
                             "--host", "127.0.0.1", "--port", "{port}"],
}
CORE_SERVE = [name for name in COMMANDS if name.startswith("core serve")]
ROWS = {"X": [[1, 2], [3, 4]]}


#: hypercorn's parent process exits 0 when its worker fails to start (``_join_exited`` in
#: ``hypercorn/run.py``); the worker's line is still there. Every other way exits 1.
STARTUP_FAILED = {"hypercorn core.app:app": 0}


@pytest.fixture(params=list(COMMANDS))
def command(request: pytest.FixtureRequest) -> list[str]:
    return COMMANDS[request.param]


@pytest.fixture(params=CORE_SERVE)
def core_serve(request: pytest.FixtureRequest) -> list[str]:
    return COMMANDS[request.param]


@pytest.mark.parametrize("way", list(COMMANDS))
def test_a_model_that_cannot_load_ends_the_process_with_one_line(server_factory, way):
    """Never serving without the model: exit code 1 and ``core: cannot start: ...``."""
    server = server_factory(object_config("models:no_such_model"), command=COMMANDS[way])
    code, log = server.run_to_exit(120)
    assert code == STARTUP_FAILED.get(way, 1), log
    lines = re.findall(r"^.*core: cannot start: .*$", log, re.M)
    assert len(lines) == 1 and "no_such_model" in lines[0], log
    assert "Traceback" not in log and "core: serving" not in log, log


def test_predict(serve, command):
    server = serve(object_config("models:sum_model"), command=command)
    response = httpx.post(f"{server.url}/predict", json=ROWS, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {"predict_result": [3.0, 7.0]}
    assert len(response.headers["x-predict-id"]) == 32
    assert httpx.get(f"{server.url}/health/ready").json() == {"ready": True}


def chunks(total: int) -> Iterator[bytes]:
    """A JSON body of ``total`` bytes or so, sent chunked (no Content-Length)."""
    yield b'{"X": [[1'
    for _ in range(total // MiB):
        yield b",1" * (MiB // 2)
    yield b"]]}"


def test_a_chunked_body_over_the_limit_is_413(serve, command):
    server = serve(object_config("models:sum_model", max_body_size=MiB), command=command)
    response = httpx.post(f"{server.url}/predict", content=chunks(20 * MiB),
                          headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 413, response.text[:300]
    assert "max_body_size" in response.json()["detail"][0]["msg"]
    assert response.headers["connection"] == "close"
    assert httpx.post(f"{server.url}/predict", json=ROWS).status_code == 200  # still serving


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_slow_body_is_408_and_its_connection_closed(serve, trickle, command, chunked):
    server = serve(object_config("models:sum_model", body_timeout=1), command=command)
    slow = trickle(server, "/predict", chunked=chunked)
    deadline = time.monotonic() + 30
    while not slow.received and not slow.closed and time.monotonic() < deadline:
        time.sleep(0.2)
        slow.tick()
    slow.read(timeout=5)  # the rest of the answer, then the server's EOF
    status, headers, body = slow.response()
    assert status == 408, slow.received
    assert b"body_timeout" in body
    assert headers["connection"] == "close"
    assert slow.closed, "the server kept the connection open after its 408"


def test_sigterm_answers_the_requests_in_flight(serve, core_serve):
    """``core serve`` under either server: SIGTERM while slow predictions run on several
    connections; each is answered 200, the process exits 0 without a traceback."""
    server = serve(object_config("models:slow_model", timeout_for_shutdown_daemon=10), command=core_serve)
    answers: list[int] = []

    def client() -> None:
        answers.append(httpx.post(f"{server.url}/predict", json={"X": [[1, 2]], "seconds": 1}, timeout=30).status_code)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the predictions are running
    server.terminate()
    for thread in threads:
        thread.join(60)
    assert server.wait(60) == 0, server.log()
    assert answers == [200] * 4, (answers, server.log())
    assert "Traceback" not in server.log(), server.log()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=2)


def test_server_uvicorn_without_uvicorn_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed
    assert main(["serve", str(tmp_path), "--server", "uvicorn"]) == 1
    assert capsys.readouterr().err == (
        "core: error: --server uvicorn needs uvicorn: pip install 'core[uvicorn]'\n")
