"""``mode = "worker_and_queue"`` on a real server: results through futures, 429 on a full
queue, and long predictions (202, ``GET /get-predict/{id}``, 408, 404, expiry)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
from arch_models import POISON, model_config
from test_arch_batching import expected, post_all


def test_concurrent_requests_get_their_own_results(arch_server: Any) -> None:
    server = arch_server(model_config(delay=0.01, mode="worker_and_queue", worker_count=3))
    bodies = [{"X": [[float(i), float(j)] for j in range(1 + i % 5)], "scale": 1.0 + i % 2}
              for i in range(40)]
    for body, response in zip(bodies, post_all(server.url, bodies)):
        assert response.status_code == 200, response.text
        assert response.json()["predict_result"] == expected(body)


def test_quick_requests_run_in_a_free_slot_on_the_event_loop(arch_server: Any) -> None:
    server = arch_server(model_config(mode="worker_and_queue", worker_count=2))
    bodies = [{"X": [[float(i), 1.0]]} for i in range(30)]
    with httpx.Client(base_url=server.url) as client:
        for body in bodies:  # one at a time: timed in the pool first, then inline
            response = client.post("/predict", json=body)
            assert response.json()["predict_result"] == expected(body)
        for body, response in zip(bodies, post_all(server.url, bodies)):  # and concurrently
            assert response.json()["predict_result"] == expected(body)
        architecture = client.get("/info").json()["architecture"]
    assert architecture["inline_calls"] >= 20
    assert architecture["in_flight"] == 0 and architecture["queue_depth"] == 0


def test_full_queue_is_answered_429_with_retry_after(arch_server: Any) -> None:
    server = arch_server(model_config(delay=0.4, mode="worker_and_queue", worker_count=1,
                                      max_queue_size=1))
    responses = post_all(server.url, [{"X": [[float(i), 1.0]]} for i in range(6)])
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 429}, statuses
    for body_index, response in enumerate(responses):
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "1"
            detail = response.json()["detail"][0]
            assert detail["type"] == "queue_full" and "max_queue_size" in detail["msg"]
        else:
            assert response.json()["predict_result"] == [body_index + 1.0]


def long_config(**settings: Any) -> dict[str, Any]:
    return model_config(mode="worker_and_queue", is_long_predict=True, **settings)


def test_long_predict_round_trip(arch_server: Any) -> None:
    server = arch_server(long_config(delay=3.0))
    body = {"X": [[1.0, 2.0], [3.0, 4.0]], "scale": 2.0}
    started = time.perf_counter()
    accepted = httpx.post(f"{server.url}/predict", json=body)
    assert accepted.status_code == 202
    assert time.perf_counter() - started < 2.5, "202 came after the model ran"
    predict_id = accepted.json()["predict_id"]
    assert accepted.headers["X-Predict-Id"] == predict_id
    result = httpx.get(f"{server.url}/get-predict/{predict_id}", timeout=10)  # waits
    assert result.status_code == 200
    assert result.json() == {"predict_result": [6.0, 14.0]}
    again = httpx.get(f"{server.url}/get-predict/{predict_id}")  # kept until it expires
    assert again.json() == result.json()


def test_long_predict_error_has_the_direct_answer_shape(arch_server: Any) -> None:
    server = arch_server(long_config())
    predict_id = httpx.post(f"{server.url}/predict", json={"X": [[POISON, 1.0]]}).json()["predict_id"]
    result = httpx.get(f"{server.url}/get-predict/{predict_id}", timeout=10)
    assert result.status_code == 500
    assert "poison row" in result.json()["detail"][0]["msg"]
    assert result.json()["predict_id"] == predict_id


def test_pending_result_waits_ttl_client_wait_then_408(arch_server: Any) -> None:
    server = arch_server(long_config(delay=4.0, ttl_client_wait=0.2))
    predict_id = httpx.post(f"{server.url}/predict", json={"X": [[1.0, 1.0]]}).json()["predict_id"]
    started = time.perf_counter()
    pending = httpx.get(f"{server.url}/get-predict/{predict_id}")
    assert pending.status_code == 408
    assert time.perf_counter() - started < 3.5  # before the model's 4 s were over
    assert "ttl_client_wait" in pending.json()["detail"][0]["msg"]
    deadline = time.monotonic() + 10
    while True:
        ready = httpx.get(f"{server.url}/get-predict/{predict_id}")
        if ready.status_code != 408 or time.monotonic() > deadline:
            break
    assert ready.status_code == 200 and ready.json() == {"predict_result": [2.0]}


def test_unknown_and_expired_ids_are_404_at_once(arch_server: Any) -> None:
    server = arch_server(long_config(ttl_predicted_data=3, ttl_client_wait=60))
    started = time.perf_counter()
    unknown = httpx.get(f"{server.url}/get-predict/no-such-id", timeout=120)
    # at once: not after waiting ttl_client_wait (60 s) for a result that cannot come
    assert unknown.status_code == 404 and time.perf_counter() - started < 30
    assert unknown.json()["detail"][0]["type"] == "not_found"
    assert re.search(r"unknown, or its result expired .* does not share its result store",
                     unknown.json()["detail"][0]["msg"])
    predict_id = httpx.post(f"{server.url}/predict", json={"X": [[1.0, 1.0]]}).json()["predict_id"]
    assert httpx.get(f"{server.url}/get-predict/{predict_id}").status_code == 200
    time.sleep(3.5)  # past ttl_predicted_data
    expired = httpx.get(f"{server.url}/get-predict/{predict_id}")
    assert expired.status_code == 404
    assert "expired" in expired.json()["detail"][0]["msg"]


def test_info_reports_results_of_long_predictions(arch_server: Any, tmp_path: Path) -> None:
    server = arch_server(long_config())
    predict_id = httpx.post(f"{server.url}/predict", json={"X": [[1.0, 1.0]]}).json()["predict_id"]
    httpx.get(f"{server.url}/get-predict/{predict_id}")
    info = httpx.get(f"{server.url}/info").json()["architecture"]
    assert info["mode"] == "worker_and_queue" and info["is_long_predict"] is True
    assert info["results_ready"] == 1 and info["results_pending"] == 0
