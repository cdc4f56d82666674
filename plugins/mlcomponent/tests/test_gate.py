"""MLComponent's ``POST /inference`` (and core's ``POST /predict`` serving the same function)
behind core's admission gate, tried as an attacker and a new user would: a chunked upload past
``max_body_size``, a form posted cross-site, the gate's predict id, ``predict_timeout``, and
refusals answered in core's error format without a traceback in the log."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

MiB = 1024 * 1024
#: The most a worker may hold, whatever it is sent (it starts at ~120 MB with numpy loaded).
MEMORY_BOUND = 200 * 1000 * 1000

FUNCTIONS = '''
import time
from pathlib import Path


def measure(parameters, inputs, output_fields, model_key, model=None):
    """Measure an uploaded file; sleep first when asked (the parameter ``sleep``).

    :param inputs.x: numbers
    :type inputs.x: FP32
    :param inputs.doc: any file
    :type inputs.doc: FILE application/octet-stream, optional
    :param outputs.size: the file's size in bytes
    :type outputs.size: INT32
    """
    time.sleep(float(dict(parameters).get("sleep", 0)))
    by_name = {i["name"]: i for i in inputs}
    size = Path(by_name["doc"]["data"]).stat().st_size if "doc" in by_name else 0
    return [{"name": "size", "datatype": "INT32", "data": [size], "shape": [1]}], model
'''

REQUEST = {"inputs": [{"name": "x", "datatype": "FP32", "data": [1.0], "shape": [1]}]}
BOUNDARY = "gate-test-boundary"


@pytest.fixture(scope="module")
def server(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    functions = tmp_path_factory.mktemp("functions")
    (functions / "mlc_gate_functions.py").write_text(textwrap.dedent(FUNCTIONS))
    return serve({
        "name": "mlc",
        "storage_type": "mlcomponent",
        "storage_kwargs": {"python_function": "mlc_gate_functions.measure", "python_path": str(functions),
                           "model_key": "/models/key", "files_path": str(tmp_path_factory.mktemp("exchange"))},
        "data_transformer_for_predict": "passthrough",
        "max_body_size": 10 * MiB,
        "predict_timeout": 2,
    })


def multipart(server: Any, size: int) -> Iterator[bytes]:
    """A form with the JSON request and a ``doc`` file of ``size`` bytes, built while it is sent
    (chunked: no Content-Length). It stops the test as soon as the worker's peak memory passes
    :data:`MEMORY_BOUND`, so a server without a limit fails instead of swallowing gigabytes."""
    yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="request"\r\n\r\n{json.dumps(REQUEST)}\r\n'
           f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="doc"; filename="big.bin"\r\n'
           f"Content-Type: application/octet-stream\r\n\r\n").encode()
    chunk = b"\0" * MiB
    for sent in range(0, size, MiB):
        peak = server.peak_memory()
        assert peak < MEMORY_BOUND, f"the worker grew to {peak / MiB:.0f} MiB after {sent / MiB:.0f} MiB sent"
        yield chunk[:size - sent]
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def upload(server: Any, size: int) -> httpx.Response:
    return httpx.post(f"{server.url}/inference", content=multipart(server, size), timeout=120,
                      headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})


def assert_core_error(response: httpx.Response, status: int, fragment: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/json"
    predict_id = response.headers["X-Predict-Id"]
    assert len(predict_id) == 32 and int(predict_id, 16) >= 0
    body = response.json()
    assert body["predict_id"] == predict_id
    assert fragment in body["detail"][0]["msg"], body
    detail: dict[str, Any] = body["detail"][0]
    return detail


def test_a_chunked_upload_over_the_limit_is_413_and_the_worker_stays_small(server: Any) -> None:
    """100 MiB sent chunked against a 10 MiB limit: refused once 10 MiB are in."""
    response = upload(server, 100 * MiB)
    assert_core_error(response, 413, "max_body_size")
    assert response.headers["connection"] == "close"
    assert server.peak_memory() < MEMORY_BOUND


def test_a_chunked_upload_under_the_limit_is_served(server: Any) -> None:
    response = upload(server, 3 * MiB)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [3 * MiB]
    assert response.json()["predict_id"] == response.headers["X-Predict-Id"]


@pytest.mark.parametrize("path", ["/inference", "/predict"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_cross_site_form_post_is_415(server: Any, path: str, content_type: str) -> None:
    """What a form on any web page can post without a CORS preflight never runs the function."""
    body = json.dumps(REQUEST if path == "/inference" else {"requests": [REQUEST]})
    response = httpx.post(f"{server.url}{path}", content=body, headers={"content-type": content_type})
    detail = assert_core_error(response, 415, f"the request has Content-Type {content_type!r}")
    assert detail["loc"] == ["header", "content-type"]


def test_answers_carry_the_gates_predict_id(server: Any) -> None:
    ok = httpx.post(f"{server.url}/inference", json=REQUEST)
    assert ok.status_code == 200, ok.text
    assert ok.json()["predict_id"] == ok.headers["X-Predict-Id"]
    refused = httpx.post(f"{server.url}/inference", json={"inputs": [{"name": "nope", "data": [1]}]})
    detail = assert_core_error(refused, 422, "datatype must be one of")
    assert detail["loc"] == ["body", "inputs", "nope", "datatype"]
    assert len({ok.headers["X-Predict-Id"], refused.headers["X-Predict-Id"]}) == 2


@pytest.mark.parametrize("path", ["/inference", "/predict"])
def test_predict_timeout_is_504(server: Any, path: str) -> None:
    slow = {**REQUEST, "parameters": [["sleep", 5]]}
    body = slow if path == "/inference" else {"requests": [slow]}
    response = httpx.post(f"{server.url}{path}", json=body, timeout=30)
    assert_core_error(response, 504, "predict_timeout = 2 s")


def test_expected_errors_are_answered_but_not_logged_as_tracebacks(server: Any) -> None:
    """Refusals raised at the gate and inside the plugin's route (a RequestError from the
    function's specification, an unknown form field): at most a line in the log."""
    url = f"{server.url}/inference"
    form = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="bogus"\r\n\r\n1\r\n--{BOUNDARY}--\r\n'
    answers = [
        httpx.post(url, json={"inputs": [{"name": "nope", "data": [1]}]}),
        httpx.post(url, json={"inputs": [{"name": "x", "datatype": "FP32", "data": ["one"], "shape": [1]}]}),
        httpx.post(url, content=b"{oops", headers={"content-type": "application/json"}),
        httpx.post(url, content=form, headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"}),
        httpx.post(url, content=b"x", headers={"content-type": "text/plain"}),
    ]
    assert [a.status_code for a in answers] == [422, 422, 400, 400, 415], [a.text for a in answers]
    assert all(a.json()["predict_id"] == a.headers["X-Predict-Id"] for a in answers)
    log = server.log()
    assert "Traceback" not in log, log
