"""V2 ``infer`` behind core's admission gate, tried as an attacker and a new user would: gzip
bodies (a bomb, a valid one from tritonclient, corrupt ones, unknown encodings), a form posted
cross-site, the predict id, ``predict_timeout``, deep nesting and impossible shapes; every error
in the protocol's ``{"error": ...}`` and none logged as a traceback."""

from __future__ import annotations

import gzip
import json
import textwrap
import zlib
from typing import Any

import core_storage_memory  # noqa: F401
import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient

MiB = 1024 * 1024
#: The most a worker may hold, whatever it is sent (it starts at ~120 MB with numpy loaded).
MEMORY_BOUND = 200 * 1000 * 1000

MODELS = '''
import time

import numpy as np


class Echo:
    def predict(self, X, seconds: float = 0.0):
        time.sleep(seconds)
        return np.asarray(X, dtype=np.float64)


echo = Echo()
'''

ROWS = {"inputs": [{"name": "X", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]}


@pytest.fixture(scope="module")
def server(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("gate_models")
    (folder / "v2_gate_models.py").write_text(textwrap.dedent(MODELS))
    return serve({"name": "echo", "storage_type": "memory", "storage_kwargs": {"object": "v2_gate_models:echo"},
                  "max_body_size": 10 * MiB, "predict_timeout": 2}, pythonpath=[folder])


def infer(server: Any, content: bytes, model: str = "echo", **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/{model}/infer", content=content,
                      headers={"content-type": "application/json", **headers}, timeout=60)


def assert_v2_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/json"
    assert list(response.json()) == ["error"]  # the protocol's error body
    assert fragment in response.json()["error"], response.text[:500]
    predict_id = response.headers["X-Predict-Id"]
    assert len(predict_id) == 32 and int(predict_id, 16) >= 0


def gzip_bomb(head: bytes, filler: bytes, count: int, tail: bytes) -> bytes:
    """``head + filler * count + tail`` gzipped while it is built (the test stays small)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [compressor.compress(head), *(compressor.compress(filler) for _ in range(count))]
    return b"".join([*parts, compressor.compress(tail), compressor.flush()])


def test_a_gzip_body_that_inflates_past_the_limit_is_413_and_the_worker_stays_small(server: Any) -> None:
    """~600 KiB of gzip inflating to a 600 MiB BYTES tensor: refused at 10 MiB inflated."""
    bomb = gzip_bomb(b'{"inputs": [{"name": "X", "shape": [1], "datatype": "BYTES", "data": ["',
                     b"a" * MiB, 600, b'"]}]}')
    assert len(bomb) < MiB
    response = infer(server, bomb, **{"content-encoding": "gzip"})
    assert_v2_error(response, 413, "the decompressed body is over the limit (max_body_size)")
    assert server.peak_memory() < MEMORY_BOUND


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_a_compressed_request_from_tritonclient_is_served(server: Any, algorithm: str) -> None:
    client = httpclient.InferenceServerClient(server.address)
    tensor = httpclient.InferInput("X", [2, 2], "FP32")
    tensor.set_data_from_numpy(np.array([[1, 2], [3, 4]], dtype=np.float32))
    result = client.infer("echo", [tensor], request_compression_algorithm=algorithm)
    np.testing.assert_array_equal(result.as_numpy("predict"), [[1, 2], [3, 4]])


def test_an_unknown_encoding_is_415(server: Any) -> None:
    response = infer(server, json.dumps(ROWS).encode(), **{"content-encoding": "br"})
    assert_v2_error(response, 415, "Content-Encoding 'br' is not supported; send gzip, deflate or none")


@pytest.mark.parametrize("content", [b"\x1f\x8b\x08\x00 not deflate data", gzip.compress(b'{"inputs": []}')[:-5]],
                         ids=["corrupt", "truncated"])
def test_a_corrupt_gzip_body_is_400(server: Any, content: bytes) -> None:
    response = infer(server, content, **{"content-encoding": "gzip"})
    assert_v2_error(response, 400, "the body is not valid for its Content-Encoding")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_a_cross_site_form_post_is_415(server: Any, content_type: str) -> None:
    response = infer(server, json.dumps(ROWS).encode(), **{"content-type": content_type})
    assert_v2_error(response, 415, f"the request has Content-Type {content_type.split(';')[0]!r}")


def test_answers_carry_the_gates_predict_id(server: Any) -> None:
    ok = httpx.post(f"{server.url}/v2/models/echo/infer", json=ROWS)
    assert ok.status_code == 200, ok.text
    ids = {ok.headers["X-Predict-Id"]}
    wrong = httpx.post(f"{server.url}/v2/models/other/infer", json=ROWS)
    assert_v2_error(wrong, 404, "unknown model 'other'")
    ids.add(wrong.headers["X-Predict-Id"])
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)


def test_predict_timeout_is_504(server: Any) -> None:
    response = httpx.post(f"{server.url}/v2/models/echo/infer", json={**ROWS, "parameters": {"seconds": 5}},
                          timeout=30)
    assert_v2_error(response, 504, "predict_timeout = 2 s")


def test_expected_errors_are_answered_but_not_logged_as_tracebacks(server: Any) -> None:
    """Refusals raised at the gate and inside the V2 route (a V2Error, a RequestError): one
    line at most in the log, never a traceback."""
    url = f"{server.url}/v2/models"
    answers = [
        httpx.post(f"{url}/other/infer", json=ROWS),
        httpx.post(f"{url}/echo/infer", content=b"{oops", headers={"content-type": "application/json"}),
        httpx.post(f"{url}/echo/infer", json={"inputs": [{"name": "X", "shape": [1], "datatype": "FP32"}]}),
        httpx.post(f"{url}/echo/infer", json={**ROWS, "parameters": {"bogus": 1}}),
        httpx.post(f"{url}/echo/infer", content=b"x", headers={"content-type": "text/plain"}),
        httpx.post(f"{url}/echo/infer", content=b"x" * (11 * MiB), headers={"content-type": "application/json"}),
    ]
    assert [a.status_code for a in answers] == [404, 400, 400, 400, 415, 413], [a.text for a in answers]
    assert all(list(a.json()) == ["error"] for a in answers)
    log = server.log()
    assert "Traceback" not in log, log


@pytest.mark.parametrize(("shape", "data"), [
    pytest.param([0, 2**63], [], id="zero-by-huge"),
    pytest.param([1] * 100, [1.0], id="100-dims"),
    pytest.param([2**62, 2**62], [1.0], id="huge"),
    pytest.param([1, 1], "[" * 1000 + "1" + "]" * 1000, id="nested-1000"),
])
def test_impossible_shapes_and_deep_nesting_are_400(server: Any, shape: list[int], data: Any) -> None:
    data_json = data if isinstance(data, str) else json.dumps(data)
    body = json.dumps({"inputs": [{"name": "X", "shape": shape, "datatype": "FP32", "data": "DATA"}]})
    response = infer(server, body.replace('"DATA"', data_json).encode())
    assert response.status_code == 400, response.text[:500]
    assert list(response.json()) == ["error"]
    assert "Traceback" not in server.log()
