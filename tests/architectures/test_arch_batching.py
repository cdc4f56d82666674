"""``mode = "batching"`` on a real server: merging, per-request correctness, the wait bound,
empty and oversized requests, model errors confined to the requests that cause them, wrong row
counts."""

from __future__ import annotations

import concurrent.futures
import random
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from arch_models import POISON, model_config, read_calls

REPO = Path(__file__).resolve().parents[2]


def post_all(url: str, bodies: list[dict[str, Any]], timeout: float = 30) -> list[httpx.Response]:
    """POST every body at once, from as many threads, each its own client and connection (one
    httpx.Client's pool shared by 61 threads once failed a CI run with EBADF on the client)."""
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: httpx.post(f"{url}/predict", json=body, timeout=timeout), bodies))


def expected(body: dict[str, Any]) -> list[float]:
    return [sum(row) * body.get("scale", 1.0) + body.get("offset", 0) for row in body["X"]]


def test_concurrent_requests_become_one_model_call(arch_server: Any, tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    server = arch_server(model_config(calls_file=calls, delay=0.2, mode="batching",
                                      max_batch_wait=200, max_batch_size=64))
    bodies = [{"X": [[float(i), 1.0]]} for i in range(8)]
    responses = post_all(server.url, bodies)
    assert [r.status_code for r in responses] == [200] * 8
    assert [r.json()["predict_result"] for r in responses] == [expected(b) for b in bodies]
    recorded = read_calls(calls)
    assert sum(recorded) == 8
    assert len(recorded) < 8 and max(recorded) > 1, f"no requests were merged: {recorded}"
    info = httpx.get(f"{server.url}/info").json()["architecture"]
    assert info["batches"] == len(recorded)


def test_mixed_rows_and_arguments_under_concurrency(arch_server: Any, tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    server = arch_server(model_config(calls_file=calls, delay=0.01, mode="batching",
                                      max_batch_wait=20, max_batch_size=8))
    rng = random.Random(7)
    bodies: list[dict[str, Any]] = []
    for i in range(60):
        rows = [[float(i), float(j), rng.random()] for j in range(rng.randint(1, 6))]
        body: dict[str, Any] = {"X": rows}
        if i % 3 == 1:
            body["scale"] = 2.0
        if i % 4 == 2:
            body["offset"] = 100
        bodies.append(body)
    bodies.append({"X": [[float(k), 0.5, 0.25] for k in range(20)], "scale": 3.0})  # > 8 rows
    responses = post_all(server.url, bodies)
    for body, response in zip(bodies, responses):
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["predict_result"], expected(body))
    recorded = read_calls(calls)
    assert sum(recorded) == sum(len(b["X"]) for b in bodies)
    assert max(recorded) == 20  # the oversized request ran as its own call
    assert all(n <= 8 for n in recorded if n != 20)
    assert len(recorded) < len(bodies)


def test_lone_request_waits_at_most_max_batch_wait(arch_server: Any) -> None:
    server = arch_server(model_config(mode="batching", max_batch_wait=50))
    with httpx.Client() as client:
        client.post(f"{server.url}/predict", json={"X": [[1.0, 2.0]]})  # warm up
        started = time.perf_counter()
        response = client.post(f"{server.url}/predict", json={"X": [[1.0, 2.0]]})
        elapsed = time.perf_counter() - started
    assert response.json() == {"predict_result": [3.0]}
    assert elapsed < 0.75, f"a lone request took {elapsed:.3f} s with max_batch_wait = 50 ms"


def test_empty_x_is_answered_without_a_model_call(arch_server: Any, tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    server = arch_server(model_config(calls_file=calls, mode="batching"))
    response = httpx.post(f"{server.url}/predict", json={"X": []})
    assert response.status_code == 200
    assert response.json() == {"predict_result": []}
    assert read_calls(calls) == []


def test_a_model_error_fails_only_the_request_that_causes_it(arch_server: Any,
                                                             tmp_path: Path) -> None:
    """The poisoned request's batch is cut in halves until the poison is alone: the requests
    batched with it, and every other batch, get their answers."""
    calls = tmp_path / "calls.log"
    server = arch_server(model_config(calls_file=calls, delay=0.1, mode="batching",
                                      max_batch_wait=200))
    poisoned = [{"X": [[1.0, 1.0]]}, {"X": [[POISON, 0.0]]}, {"X": [[2.0, 2.0], [0.5, 0.5]]},
                {"X": [[4.0, 0.0]]}]
    other = [{"X": [[1.0, 1.0]], "scale": 2.0}, {"X": [[3.0, 1.0]], "scale": 2.0}]
    responses = post_all(server.url, poisoned + other)
    assert responses[1].status_code == 500
    detail = responses[1].json()["detail"][0]
    assert "poison row" in detail["msg"] and detail["type"] == "predict_error"
    good = [0, 2, 3, 4, 5]
    assert [responses[i].status_code for i in good] == [200] * 5, [r.text for r in responses]
    assert [responses[i].json()["predict_result"] for i in good] == [[2.0], [4.0, 1.0], [4.0], [4.0], [8.0]]
    info = httpx.get(f"{server.url}/info").json()["architecture"]
    assert info["bisections"] >= 1
    recorded = read_calls(calls)
    assert sum(recorded) > 7 and max(recorded) > 1, recorded  # merged, then run again in parts
    after = httpx.post(f"{server.url}/predict", json={"X": [[5.0, 5.0]]})
    assert after.json() == {"predict_result": [10.0]}


def test_wrong_row_count_is_an_error_for_every_request(arch_server: Any) -> None:
    server = arch_server(model_config("wrong_rows", delay=0.1, mode="batching",
                                      max_batch_wait=300))
    responses = post_all(server.url, [{"X": [[1.0, 1.0]]}, {"X": [[2.0, 2.0], [3.0, 3.0]]}])
    for response in responses:
        assert response.status_code == 500, response.text
        msg = response.json()["detail"][0]["msg"]
        assert "returned 2 rows for a batch of 3 rows" in msg, msg


def test_dict_results_are_split_per_output(arch_server: Any) -> None:
    server = arch_server(model_config("dict", delay=0.05, mode="batching", max_batch_wait=100))
    bodies = [{"X": [[float(i), 1.0]] * (1 + i % 3)} for i in range(10)]
    for body, response in zip(bodies, post_all(server.url, bodies)):
        result = response.json()["predict_result"]
        assert result == {"sum": [row[0] + 1.0 for row in body["X"]],
                          "first": [int(row[0]) for row in body["X"]]}


def test_full_queue_is_answered_429(arch_server: Any) -> None:
    server = arch_server(model_config(delay=0.4, mode="batching", max_queue_size=2,
                                      worker_count=1, max_batch_size=1, max_batch_wait=0))
    responses = post_all(server.url, [{"X": [[float(i), 0.0]]} for i in range(8)])
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {200, 429}, statuses
    for response in responses:
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "1"
            assert "max_queue_size" in response.json()["detail"][0]["msg"]
            assert response.json()["predict_id"] == response.headers["X-Predict-Id"]


@pytest.mark.plugins
def test_onnx_batching_matches_the_session(arch_server: Any, tmp_path: Path) -> None:
    import sys

    import onnxruntime as ort

    sys.path.insert(0, str(REPO))
    from bench.models import build_mlp

    path = build_mlp(tmp_path / "mlp.onnx", n_inputs=6, hidden=(16,), n_outputs=3)
    server = arch_server({
        "name": "onnx-mlp", "storage_type": "disk",
        "storage_kwargs": {"path_to_files": str(path)}, "binarization_type": "onnx",
        "mode": "batching", "max_batch_wait": 30, "max_batch_size": 16, "log_level": "WARNING",
    })
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    bodies = [{"X": rng.normal(size=(int(rng.integers(1, 7)), 6)).round(3).tolist()}
              for _ in range(32)]
    for body, response in zip(bodies, post_all(server.url, bodies)):
        assert response.status_code == 200, response.text
        result = response.json()["predict_result"]
        label, probabilities = session.run(["label", "probabilities"],
                                           {"X": np.asarray(body["X"], dtype=np.float32)})
        assert result["label"] == label.tolist()
        np.testing.assert_allclose(result["probabilities"], probabilities, rtol=1e-5, atol=1e-6)
    assert httpx.get(f"{server.url}/info").json()["architecture"]["batches"] < len(bodies)
