"""What every mode shares, on a real server: limits, ``predict_timeout``, ``/health`` and
``/info`` while the model is busy, custom architectures, and graceful shutdown with requests
in flight."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import httpx
import pytest
from arch_models import model_config
from test_arch_batching import post_all

MODES = ["directly_to_predict", "worker_and_queue", "batching"]


@pytest.mark.parametrize("mode", MODES)
def test_limits_behave_the_same_in_every_mode(arch_server: Any, mode: str) -> None:
    server = arch_server(model_config(mode=mode, throttling_max_request_len=3,
                                      max_body_size=2000, predict_timeout=0.3))
    url = f"{server.url}/predict"
    too_long = httpx.post(url, json={"X": [[1.0, 1.0]] * 4})
    assert too_long.status_code == 429
    assert "throttling_max_request_len" in too_long.json()["detail"][0]["msg"]
    too_big = httpx.post(url, json={"X": [[1.0] * 1000]})
    assert too_big.status_code == 413 and too_big.json()["detail"][0]["type"] == "body_too_large"
    invalid = httpx.post(url, json={"X": "nope"})
    assert invalid.status_code == 422
    assert httpx.post(url, json={"X": [[1.0, 2.0]]}).json() == {"predict_result": [3.0]}


@pytest.mark.parametrize("mode", MODES)
def test_throttling_max_requests_in_every_mode(arch_server: Any, mode: str) -> None:
    server = arch_server(model_config(mode=mode, delay=0.3, throttling_max_requests=2))
    responses = post_all(server.url, [{"X": [[float(i), 0.0]]} for i in range(6)])
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 429}, statuses
    assert all("throttling_max_requests" in r.json()["detail"][0]["msg"]
               for r in responses if r.status_code == 429)


@pytest.mark.parametrize("mode", MODES)
def test_predict_timeout_is_answered_504(arch_server: Any, mode: str) -> None:
    server = arch_server(model_config(mode=mode, delay=4.0, predict_timeout=0.2))
    started = time.perf_counter()
    response = httpx.post(f"{server.url}/predict", json={"X": [[1.0, 1.0]]}, timeout=10)
    assert response.status_code == 504
    assert time.perf_counter() - started < 3.5  # before the model's 4 s were over
    body = response.json()
    assert body["detail"][0]["type"] == "predict_timeout"
    assert "predict_timeout" in body["detail"][0]["msg"]
    assert body["predict_id"] == response.headers["X-Predict-Id"]


@pytest.mark.parametrize("mode", MODES)
def test_health_and_info_answer_while_the_model_is_busy(arch_server: Any, mode: str) -> None:
    server = arch_server(model_config(mode=mode, delay=2.0, worker_count=1,
                                      max_thread_loop_workers=1, max_batch_wait=0))
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        busy = [pool.submit(httpx.post, f"{server.url}/predict", json={"X": [[float(i), 0.0]]},
                            timeout=60) for i in range(3)]
        time.sleep(0.3)
        health = httpx.get(f"{server.url}/health", timeout=60)
        info = httpx.get(f"{server.url}/info", timeout=60).json()["architecture"]
        # answered while the model was still busy (the three calls take 6 s one after the
        # other), not after it: ordered, not timed
        assert not all(f.done() for f in busy)
        assert health.status_code == 200
        assert info["mode"] == mode
        assert info["in_flight"] >= 1
        assert info["in_flight"] + info["queue_depth"] == 3 or mode == "directly_to_predict"
        assert all(f.result().status_code == 200 for f in busy)


@pytest.mark.parametrize("mode", ["worker_and_queue", "batching"])
def test_info_reports_the_settings(arch_server: Any, mode: str) -> None:
    server = arch_server(model_config(mode=mode, max_queue_size=7, max_batch_size=5,
                                      max_batch_wait=3.5, worker_count=2))
    info = httpx.get(f"{server.url}/info").json()["architecture"]
    assert info["mode"] == mode
    assert info["max_queue_size"] == 7 and info["worker_count"] == 2
    assert info["queue_depth"] == 0 and info["in_flight"] == 0
    if mode == "batching":
        assert info["max_batch_size"] == 5 and info["max_batch_wait"] == 3.5


def test_custom_architecture_by_dotted_path(arch_server: Any) -> None:
    server = arch_server(model_config(mode="arch_custom.EchoRowsArchitecture"))
    response = httpx.post(f"{server.url}/predict", json={"X": [[1.0, 2.0]]})
    assert response.json() == {"predict_result": {"custom": [3.0]}}
    info = httpx.get(f"{server.url}/info").json()["architecture"]
    assert info["mode"] == "arch_custom.EchoRowsArchitecture" and info["custom"] is True


def _fire_and_terminate(server: Any, count: int) -> list[Any]:
    """Send ``count`` requests, wait until the server holds them all, SIGTERM it, and
    collect every answer (or the connection error)."""

    def one(i: int) -> Any:
        try:
            return httpx.post(f"{server.url}/predict", json={"X": [[float(i), 1.0]]}, timeout=30)
        except httpx.HTTPError as error:
            return error

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(one, i) for i in range(count)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = httpx.get(f"{server.url}/info", timeout=60).json()
            if info["web"]["active_predicts"] >= count:
                break
            time.sleep(0.02)
        else:
            raise AssertionError(f"the server never held {count} requests: {info}")
        server.terminate()
        return [future.result() for future in futures]


@pytest.mark.parametrize("mode", MODES)
def test_shutdown_answers_every_request_in_flight(arch_server: Any, mode: str) -> None:
    # 8 requests of 2 s each, one at a time: 16 s of work, 2 s of grace. (Each request takes
    # long enough that a loaded test machine still sees all 8 held before the first ends.)
    server = arch_server(
        model_config(mode=mode, delay=2.0, worker_count=1, max_thread_loop_workers=1,
                     max_batch_size=1, max_batch_wait=0, timeout_for_shutdown_daemon=1),
        "--graceful-timeout", "2",
    )
    outcomes = _fire_and_terminate(server, 8)
    errors = [o for o in outcomes if not isinstance(o, httpx.Response)]
    assert not errors, f"requests left unanswered: {errors}\n{server.log()}"
    statuses = [o.status_code for o in outcomes]
    assert set(statuses) <= {200, 503}, statuses
    assert 200 in statuses and 503 in statuses, statuses
    for response in outcomes:
        if response.status_code == 503:
            detail = response.json()["detail"][0]
            assert detail["type"] == "unavailable" and "shutting down" in detail["msg"]
            assert response.headers["Retry-After"] == "1"
    assert server.wait(20) == 0


@pytest.mark.parametrize("mode", MODES)
def test_shutdown_finishes_what_fits_in_the_grace_period(arch_server: Any, mode: str) -> None:
    server = arch_server(
        model_config(mode=mode, delay=1.0, worker_count=2, max_thread_loop_workers=2,
                     max_batch_wait=0, timeout_for_shutdown_daemon=20),
        "--graceful-timeout", "20",  # 3 s of work: a loaded machine has room to spare
    )
    outcomes = _fire_and_terminate(server, 6)
    assert [getattr(o, "status_code", o) for o in outcomes] == [200] * 6, server.log()
    assert [o.json()["predict_result"] for o in outcomes] == [[i + 1.0] for i in range(6)]
    assert server.wait(60) == 0
