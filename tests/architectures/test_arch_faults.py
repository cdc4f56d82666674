"""Faults on a real server, in every mode: a model that hangs, is slow or raises never takes
the service down. What every concurrent client receives is checked: the faulty request gets
its error (504, 500), the others their results, and ``/health`` answers throughout."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

import httpx
import pytest
from arch_models import FaultyModel, model_config

MODES = ["directly_to_predict", "worker_and_queue", "batching"]
QUICK = {"X": [[1.0, 2.0]]}
HANG = {"X": [[-2.0, 0.0]]}  # the same size as QUICK: a kind already promoted to run inline


def faulty(mode: str, **settings: Any) -> dict[str, Any]:
    return model_config("faulty", mode=mode, max_thread_loop_workers=2, worker_count=2,
                        **{"max_batch_wait": 0, **settings})


def warm_up(url: str) -> dict[str, Any]:
    """Enough quick calls for their kind to run on the event loop (core.runner)."""
    with httpx.Client(base_url=url) as client:
        for _ in range(20):
            assert client.post("/predict", json=QUICK).json() == {"predict_result": [3.0]}
        return client.get("/info").json()["architecture"]


class HealthWatch:
    """Polls /health in a thread; the longest wait between two answers, and their count."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: list[int] = []
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            last = time.monotonic()
            while not self._stop.is_set():
                self.statuses.append(client.get("/health").status_code)
                now = time.monotonic()
                self.longest = max(self.longest, now - last)
                last = now
                time.sleep(0.01)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("mode", MODES)
def test_a_hang_on_the_fast_path_never_freezes_the_server(arch_server: Any, mode: str) -> None:
    server = arch_server(faulty(mode, predict_timeout=2))
    assert warm_up(server.url)["inline_calls"] > 0  # quick calls of this size run inline now
    with HealthWatch(server.url) as health, concurrent.futures.ThreadPoolExecutor(8) as pool:
        started = time.monotonic()
        hung = pool.submit(httpx.post, f"{server.url}/predict", json=HANG, timeout=60)
        time.sleep(0.5)  # the hung call is cut on the loop and now sleeps in a pool thread
        quick = [pool.submit(httpx.post, f"{server.url}/predict", json=QUICK, timeout=60)
                 for _ in range(20)]
        answers = [f.result() for f in quick]
        timed_out = hung.result()
        waited = time.monotonic() - started
    assert [(r.status_code, r.json()) for r in answers] == [(200, {"predict_result": [3.0]})] * 20
    assert timed_out.status_code == 504, timed_out.text
    assert timed_out.json()["detail"][0]["type"] == "predict_timeout"
    assert waited < FaultyModel.HANG  # answered at predict_timeout, not when the model returned
    assert health.statuses and set(health.statuses) == {200}
    assert health.longest < 1.0, health.longest  # the loop never waited on the model
    info = httpx.get(f"{server.url}/info").json()["architecture"]
    assert info["interrupted_inline_calls"] == 1, info


@pytest.mark.parametrize("mode", MODES)
def test_a_stuck_call_fails_liveness_until_it_returns(arch_server: Any, mode: str) -> None:
    server = arch_server(faulty(mode, predict_timeout=1, max_inline_predict_ms=0))
    assert httpx.get(f"{server.url}/health/live").status_code == 200
    assert httpx.post(f"{server.url}/predict", json=HANG, timeout=60).status_code == 504
    live = httpx.get(f"{server.url}/health/live")
    assert live.status_code == 503 and "stuck" in live.json()["reason"], live.text
    assert httpx.get(f"{server.url}/info").json()["architecture"]["stuck"] == 1
    # capacity is intact: both workers still serve while the stuck call sleeps
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{server.url}/predict", json=QUICK, timeout=30),
                                range(8)))
    assert [r.status_code for r in answers] == [200] * 8
    deadline = time.monotonic() + FaultyModel.HANG + 10
    while httpx.get(f"{server.url}/health/live").status_code != 200:
        assert time.monotonic() < deadline, "liveness never came back after the call returned"
        time.sleep(0.2)
    info = httpx.get(f"{server.url}/info").json()["architecture"]
    assert (info["stuck"], info["stuck_total"]) == (0, 1)


@pytest.mark.parametrize("mode", MODES)
def test_a_model_error_fails_its_request_alone(arch_server: Any, mode: str) -> None:
    """The other requests, before, beside and after it, get their answers; in ``batching``
    those batched with it too (the batch is cut in halves until the error is alone)."""
    server = arch_server(faulty(mode, **({"max_batch_wait": 20} if mode == "batching" else {})))
    bodies = [QUICK, {"X": [[-1.0, 0.0]]}, QUICK, {"X": [[5.0, 5.0], [1.0, 1.0]]}] * 5
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda body: httpx.post(f"{server.url}/predict", json=body, timeout=30),
                                bodies))
    for body, answer in zip(bodies, answers):
        if body["X"][0][0] == -1.0:
            assert answer.status_code == 500
            assert "the model refuses this row" in answer.json()["detail"][0]["msg"]
        else:
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"predict_result": [sum(row) for row in body["X"]]}


def test_without_a_pool_a_hang_is_interrupted_at_predict_timeout(arch_server: Any) -> None:
    server = arch_server(faulty("directly_to_predict", use_thread_loop=False, predict_timeout=1))
    started = time.monotonic()
    answer = httpx.post(f"{server.url}/predict", json=HANG, timeout=60)
    assert answer.status_code == 504 and "interrupted" in answer.json()["detail"][0]["msg"]
    assert time.monotonic() - started < FaultyModel.HANG
    assert httpx.post(f"{server.url}/predict", json=QUICK).json() == {"predict_result": [3.0]}
