"""Logs of real servers: the predict id on every line of a request (the model's own
``logging`` calls included, in every mode), a client's ``X-Request-Id``, one access line per
request, hypercorn's format with the process id, and JSON lines (hypercorn's too)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults import config as faults_config
from serving import object_config

from core.testing import Server

SERVE = [sys.executable, "-m", "core", "serve", "--host", "127.0.0.1", "--port", "{port}"]
#: hypercorn's line: ``[2026-01-31 12:00:00 +0000] [4242] [INFO] message``.
TEXT_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[(\d+)\] \[([A-Z]+)\] (.*)$")
ACCESS_LINE = re.compile(r"^POST /predict (\d{3}) \d+\.\d\d ms (\d+|-) rows$")


def logging_config(**extra: Any) -> dict[str, Any]:
    return object_config("observed:logging_model", **extra)


def stop_and_read(server: Server) -> list[str]:
    """Stop the server (its log is then complete) and return its lines."""
    server.stop()
    return server.log().splitlines()


def predict(server: Server, rows: int = 2, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", json={"X": [[1.0, 2.0]] * rows, **body}, headers=headers)


def model_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "the model got" in line]


@pytest.mark.parametrize("mode", ["directly_to_predict", "worker_and_queue", "batching"])
def test_the_models_own_log_lines_carry_the_predict_id(serve, mode):
    server = serve(logging_config(mode=mode))
    # enough calls that quick ones move from the thread pool to the event loop (core.runner)
    ids = []
    for _ in range(12):
        response = predict(server)
        assert response.status_code == 200
        ids.append(response.headers["x-predict-id"])
    lines = model_lines(stop_and_read(server))
    assert len(lines) == 12, lines
    for predict_id, line in zip(ids, lines):
        match = TEXT_LINE.match(line)
        assert match, line
        assert match.group(3) == f"[{predict_id}] the model got 2 rows", line


def test_an_error_line_carries_the_predict_id_and_its_traceback(serve):
    server = serve(logging_config())
    response = predict(server, fail=True)
    assert response.status_code == 500
    predict_id = response.headers["x-predict-id"]
    lines = stop_and_read(server)
    [index] = [i for i, line in enumerate(lines) if "the model raised while predicting" in line]
    match = TEXT_LINE.match(lines[index])
    assert match and match.group(2) == "ERROR" and match.group(3).startswith(f"[{predict_id}] "), lines[index]
    assert lines[index + 1] == "Traceback (most recent call last):"
    assert any("ValueError: the model failed on purpose" in line for line in lines[index:])


def test_a_clients_request_id_is_the_predict_id_and_is_echoed(serve):
    server = serve(logging_config())
    response = predict(server, headers={"X-Request-Id": "order-42.retry:1"})
    assert response.status_code == 200
    assert response.headers["x-predict-id"] == "order-42.retry:1"
    assert response.headers["x-request-id"] == "order-42.retry:1"
    refused = predict(server, headers={"X-Request-Id": "order-42.retry:1"}, fail=True)
    assert refused.status_code == 500 and refused.json()["predict_id"] == "order-42.retry:1"
    assert refused.headers["x-request-id"] == "order-42.retry:1"
    lines = stop_and_read(server)
    assert [line.split("] ", 3)[3] for line in model_lines(lines)] == \
        ["[order-42.retry:1] the model got 2 rows"] * 2


@pytest.mark.parametrize("request_id", ["has spaces", "x" * 129, "new\\nline", "quote\"d", ""])
def test_an_invalid_request_id_is_a_400_naming_the_rule(serve_module, request_id):
    server = serve_module(logging_config())
    response = predict(server, headers={"X-Request-Id": request_id})
    assert response.status_code == 400
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["header", "x-request-id"]
    assert detail["type"] == "invalid_request_id"
    assert "X-Request-Id must be 1 to 128 characters, each a letter, a digit or one of - _ . : / + =" \
        in detail["msg"]
    assert "x-request-id" not in response.headers  # not echoed
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-predict-id"])  # one of core's


def test_one_access_line_per_request_to_a_model_route(serve):
    server = serve(logging_config(max_body_size=1024))
    answers = [predict(server, rows=3), predict(server, rows=1), predict(server, rows=500),
               httpx.post(f"{server.url}/predict", json={"Y": 1})]
    assert [a.status_code for a in answers] == [200, 200, 413, 422]
    for _ in range(3):
        assert httpx.get(f"{server.url}/health").status_code == 200  # probes: no access line
    lines = stop_and_read(server)
    access = []
    for line in lines:
        match = TEXT_LINE.match(line)
        if match and " POST /predict " in match.group(3):
            predict_id, text = match.group(3)[1:].split("] ", 1)
            access.append((predict_id, ACCESS_LINE.match(text).groups()))  # type: ignore[union-attr]
    assert access == [(answers[0].headers["x-predict-id"], ("200", "3")),
                      (answers[1].headers["x-predict-id"], ("200", "1")),
                      (answers[2].headers["x-predict-id"], ("413", "-")),
                      (answers[3].headers["x-predict-id"], ("422", "-"))]


def test_access_log_false_writes_no_access_line(serve):
    server = serve(logging_config(access_log=False))
    assert predict(server).status_code == 200
    lines = stop_and_read(server)
    assert not [line for line in lines if " POST /predict " in line]
    assert len(model_lines(lines)) == 1


def test_text_lines_are_hypercorns_format_with_the_process_id(serve):
    server = serve(logging_config())
    pid = server.worker_pid()
    assert predict(server).status_code == 200
    lines = stop_and_read(server)
    running = [line for line in lines if "Running on http://" in line]  # hypercorn's own line
    assert len(running) == 1, lines
    for line in (running[0], *model_lines(lines)):
        match = TEXT_LINE.match(line)
        assert match and match.group(1) == str(pid), line


@pytest.mark.parametrize("how", ["hypercorn", "core serve"])
def test_json_lines_all_parse_hypercorns_included(serve, how):
    if how == "hypercorn":  # hypercorn's own access log on too: written as JSON as well
        server = serve(logging_config(log_format="json"), hypercorn_args=["--access-logfile", "-"])
    else:  # a storage that says it hands over objects: core serve asks for no binarizer
        server = serve(faults_config("observed:logging_model", log_format="json"), command=SERVE)
    ok = predict(server, headers={"X-Request-Id": "client-7"})
    failed = predict(server, fail=True)
    assert (ok.status_code, failed.status_code) == (200, 500)
    entries = [json.loads(line) for line in stop_and_read(server) if line.strip()]
    by_logger: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        assert {"time", "level", "logger", "process", "message"} <= set(entry), entry
        by_logger.setdefault(entry["logger"], []).append(entry)
    assert any("Running on http://" in e["message"] for e in by_logger["hypercorn.error"])
    if how == "hypercorn":
        assert [e["message"] for e in by_logger["hypercorn.access"] if "/predict" in e["message"]]
    [model_ok, model_failed] = by_logger["user_model"]
    assert model_ok["predict_id"] == "client-7" and model_ok["message"] == "the model got 2 rows"
    assert model_failed["predict_id"] == failed.headers["x-predict-id"]
    [error] = [e for e in entries if e["level"] == "ERROR"]
    assert error["predict_id"] == failed.headers["x-predict-id"]
    assert "ValueError: the model failed on purpose" in error["traceback"]
    access = by_logger["core.access"]
    assert [(a["method"], a["route"], a["status"], a["rows"], a["predict_id"]) for a in access] == [
        ("POST", "/predict", 200, 2, "client-7"),
        ("POST", "/predict", 500, 2, failed.headers["x-predict-id"]),
    ]
    assert all(isinstance(a["duration_ms"], float) for a in access)


def test_an_id_in_the_logs_leads_to_the_request(serve, tmp_path: Path):
    """What a user does with a client's complaint: grep the X-Predict-Id it reports."""
    server = serve(logging_config())
    answers = [predict(server, fail=n == 2) for n in range(4)]
    reported = answers[2].headers["x-predict-id"]
    lines = [line for line in stop_and_read(server) if reported in line]
    assert any("the model got 2 rows" in line for line in lines)
    assert any("the model raised while predicting" in line for line in lines)
    assert any(" POST /predict 500 " in line for line in lines)


ACCESS_SCRIPT = """
import logging, sys, time
from core.logs import PREDICT_ID, _direct_handler, access_logger, configure_logging, log_access
configure_logging("INFO", sys.argv[1])
# one time for both lines: only the way they were written differs
time.time, time.time_ns = (lambda: 1767225600.25), (lambda: 1767225600250000000)
PREDICT_ID.set("0123456789abcdef0123456789abcdef")
print(_direct_handler() is not None)
log_access("POST", "/v2/models/{name}/infer", 200, 0.0012345, 3, "client-id")  # written directly
access_logger.addFilter(lambda record: True)  # a filter on the way: the line goes through logging
print(_direct_handler() is not None)
log_access("POST", "/v2/models/{name}/infer", 200, 0.0012345, 3, "client-id")
PREDICT_ID.set(None)
access_logger.filters.clear()
log_access("GET", "/x", 503, 2.0, None)
access_logger.addFilter(lambda record: True)
log_access("GET", "/x", 503, 2.0, None)
"""


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_access_line_written_directly_is_the_one_logging_would_write(log_format):
    """With only core's own handler in the way, an access line skips the log record (most of
    its cost) and is written as that handler would write it: the same bytes as the line that
    goes through ``logging`` when a filter is added on the way."""
    done = subprocess.run([sys.executable, "-c", ACCESS_SCRIPT, log_format], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]  # directly, then through logging
    lines = done.stderr.splitlines()
    assert len(lines) == 4, done.stderr
    assert lines[0] == lines[1] and lines[2] == lines[3]
    if log_format == "text":
        assert lines[0].endswith("[INFO] [0123456789abcdef0123456789abcdef] "
                                 "POST /v2/models/{name}/infer 200 1.23 ms 3 rows")
        assert lines[2].endswith("[INFO] GET /x 503 2000.00 ms - rows")
    else:
        first = json.loads(lines[0])
        assert first["time"] == "2026-01-01T00:00:00.250+00:00"
        assert {k: first[k] for k in ("level", "logger", "predict_id", "method", "route", "status",
                                      "duration_ms", "rows", "request_id")} == {
            "level": "INFO", "logger": "core.access", "predict_id": "0123456789abcdef0123456789abcdef",
            "method": "POST", "route": "/v2/models/{name}/infer", "status": 200, "duration_ms": 1.234,
            "rows": 3, "request_id": "client-id"}


THREADS_SCRIPT = """
import io, sys, threading
from core.logs import _direct_handler, configure_logging, log_access
configure_logging("INFO", "text")
def write(n):
    for i in range(500):
        log_access("POST", "/predict/" + "x" * n, 200, 0.001, i)
threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
handler = _direct_handler()
buffer = io.StringIO()
handler.setStream(buffer)  # a stream without a file descriptor: written through it
log_access("GET", "/into-the-buffer", 200, 0.001, 1)
handler.setStream(sys.stderr)
print(buffer.getvalue().count("GET /into-the-buffer 200"))
"""


def test_access_lines_from_many_threads_never_mix():
    """The direct path writes each line with one system call and no lock: lines written by
    eight threads at once arrive whole, none lost; a stream without a file descriptor gets
    its lines through the stream."""
    done = subprocess.run([sys.executable, "-c", THREADS_SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]
    lines = done.stderr.splitlines()
    assert len(lines) == 8 * 500
    for line in lines:
        route = line.split("] POST ", 1)[1].split(" ", 1)[0]
        assert line.endswith(" 200 1.00 ms " + line.rsplit(" ", 2)[1] + " rows"), line
        assert set(route[len("/predict/"):]) <= {"x"}, line
    for n in range(8):
        assert sum(f"POST /predict/{'x' * n} 200" in line for line in lines) == 500


CLOSED_SCRIPT = """
import os, sys, tempfile
from core.logs import _direct_handler, configure_logging, log_access
configure_logging("INFO", "text")
handler = _direct_handler()
folder = tempfile.mkdtemp()
first = open(os.path.join(folder, "first.log"), "w", buffering=1)
handler.setStream(first)
log_access("GET", "/into-first", 200, 0.001, 1)
number = first.fileno()
first.close()  # as a test's capture file is closed: its descriptor's number is free again
second = open(os.path.join(folder, "second.log"), "w", buffering=1)
assert second.fileno() == number  # the number is reused
log_access("GET", "/after-close", 200, 0.001, 1)  # the handler still holds the closed stream
second.close()
handler.stream = sys.stderr  # setStream would flush the closed stream
print(open(os.path.join(folder, "first.log")).read().count("/into-first"),
      open(os.path.join(folder, "second.log")).read().count("/after-close"))
"""


def test_an_access_line_never_reaches_the_file_that_took_a_closed_streams_number():
    """The direct path asks the stream for its descriptor on every line: a stream closed since
    is reported the way ``logging`` reports it, never written through a number another file
    now has."""
    done = subprocess.run([sys.executable, "-c", CLOSED_SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "0"]
    assert "Logging error" in done.stderr and "I/O operation on closed file" in done.stderr
