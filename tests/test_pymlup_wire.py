"""``pymlup_wire_format = true``: a client written against pymlup gets pymlup's answers (the
health body, /info, the error shape, long predictions, ``input_data`` for a single-input ONNX
model), on a real server. Off by default: core's own answers are tested everywhere else."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from serving import object_config

ONNX = Path(__file__).parent.parent / "examples" / "onnx" / "model.onnx"
WIRE = {"pymlup_wire_format": True}


@pytest.fixture(scope="module")
def sum_server(serve_module):
    return serve_module(object_config("models:sum_model", **WIRE))


def test_health_and_info_as_pymlup_answered(sum_server):
    assert httpx.get(f"{sum_server.url}/health").json() == {"status": 200}
    assert httpx.options(f"{sum_server.url}/health").status_code == 200
    assert httpx.head(f"{sum_server.url}/health").status_code == 200
    info = httpx.get(f"{sum_server.url}/info").json()
    assert info == {"model_info": {"name": "test-model", "version": "1.0.0", "type": "SumModel", "columns": None},
                    "web_app_info": {"version": "1.0.0"}}


def test_errors_in_pymlup_shape(sum_server):
    missing = httpx.post(f"{sum_server.url}/predict", json={"scale": 2})
    assert missing.status_code == 422
    assert missing.json() == {"detail": [{"loc": ["X"], "msg": "field required", "type": "value_error.missing"}],
                              "predict_id": missing.headers["X-Predict-Id"]}
    broken = httpx.post(f"{sum_server.url}/predict", content=b"{nope", headers={"content-type": "application/json"})
    assert broken.status_code == 422
    [detail] = broken.json()["detail"]
    assert detail["type"] == "validation_error" and detail["msg"].startswith("Invalid json data:")
    assert httpx.post(f"{sum_server.url}/predict", json={"X": [[1, 2]]}).json() == {"predict_result": [3.0]}


def test_throttling_and_a_full_queue_as_pymlup_answered(serve):
    server = serve(object_config("models:slow_model", **WIRE, throttling_max_requests=1))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(httpx.post, f"{server.url}/predict", json={"X": [[1]], "seconds": 1.0}, timeout=30)
        time.sleep(0.3)
        refused = httpx.post(f"{server.url}/predict", json={"X": [[1]], "seconds": 0.0})
        assert slow.result().status_code == 200
    assert refused.status_code == 429
    assert refused.json()["detail"] == [{"loc": [], "msg": "Max requests in app. Please try again later.",
                                         "type": "throttling_error"}]
    queued = serve(object_config("models:slow_model", **WIRE, mode="worker_and_queue", worker_count=1,
                                 max_queue_size=1))
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{queued.url}/predict", json={"X": [[1]], "seconds": 1.0},
                                                     timeout=30), range(3)))
    full = [a for a in answers if a.status_code != 200]
    assert [a.status_code for a in full] == [500], [a.text for a in answers]
    assert full[0].json()["detail"] == [{"loc": [], "msg": "Queue is full. Please try later.", "type": "predict_error"}]


def test_long_predictions_as_pymlup_answered(serve):
    server = serve(object_config("models:sum_model", **WIRE, mode="worker_and_queue", is_long_predict=True,
                                 ttl_client_wait=0.5))
    accepted = httpx.post(f"{server.url}/predict", json={"X": [[1, 2], [3, 4]]})
    assert accepted.status_code == 200
    predict_id = accepted.json()["predict_result"]["predict_id"]
    result = httpx.get(f"{server.url}/get-predict/{predict_id}")
    assert (result.status_code, result.json()) == (200, [3.0, 7.0])
    started = time.monotonic()
    unknown = httpx.get(f"{server.url}/get-predict/no-such-id")
    assert time.monotonic() - started >= 0.5  # pymlup waited ttl_client_wait for it
    assert unknown.status_code == 408
    assert unknown.json() == {"detail": [{"loc": [], "msg": "Response timed out. Repeat request please.",
                                          "type": "predict_wait_result_error"}], "predict_id": "no-such-id"}


def onnx_config(binarizer: str) -> dict:
    return {"name": "onnx", "storage_type": "disk", "binarization_type": binarizer,
            "storage_kwargs": {"path_to_files": str(ONNX)}, **WIRE}


@pytest.mark.plugins
@pytest.mark.parametrize(("binarizer", "outputs"), [
    ("onnx", 2),  # core's name: every output, as pymlup's InferenceSessionFullReturnBinarizer
    ("mlup.ml.binarization.onnx.InferenceSessionBinarizer", 1),  # pymlup's default dropped the last
])
def test_a_single_input_onnx_model_takes_input_data(serve, binarizer, outputs):
    import onnxruntime

    server = serve(onnx_config(binarizer))
    rows = np.round(np.random.default_rng(1).normal(size=(3, 20)), 3).astype(np.float32)
    answer = httpx.post(f"{server.url}/predict", json={"input_data": rows.tolist()})
    assert answer.status_code == 200, answer.text
    session = onnxruntime.InferenceSession(str(ONNX))
    expected = [out.tolist() for out in session.run(None, {"X": rows})][:outputs]
    got = answer.json()["predict_result"]
    assert len(got) == outputs and got[0] == expected[0]
    if outputs == 2:
        assert np.allclose(got[1], expected[1], atol=1e-6)
    # the graph's own input name is still taken
    assert httpx.post(f"{server.url}/predict", json={"X": rows.tolist()}).json() == answer.json()
