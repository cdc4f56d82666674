"""Long predictions with several worker processes (``hypercorn --workers 2``): the ``local``
result store lets whichever worker answers ``GET /get-predict/{id}`` return the result of a
prediction another worker ran (or still runs)."""

from __future__ import annotations

import concurrent.futures
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from arch_models import POISON, model_config
from conftest import HELPERS
from test_arch_batching import expected

from core.testing import Server

WORKERS = ("--workers", "2")
#: ``core serve --workers 2``: the supervisor's worker processes share the store as hypercorn's do.
CORE_SERVE = [sys.executable, "-m", "core", "serve", "--host", "127.0.0.1", "--port", "{port}", "--workers", "2"]


def long_config(**settings: Any) -> dict[str, Any]:
    return model_config(mode="worker_and_queue", is_long_predict=True, **settings)


def fresh_get(url: str, timeout: float = 30) -> httpx.Response:
    """One GET on a new connection: any worker process may accept it."""
    return httpx.get(url, timeout=timeout, headers={"Connection": "close"})


def worker_pids(url: str, tries: int = 200) -> dict[int, dict[str, Any]]:
    """``/info``'s architecture section of each worker process, asked over new connections
    until both answered."""
    seen: dict[int, dict[str, Any]] = {}
    for _ in range(tries):
        info = fresh_get(f"{url}/info").json()
        seen[info["process"]["pid"]] = info["architecture"]
        if len(seen) == 2:
            break
    return seen


@pytest.mark.parametrize("command", ["hypercorn", "core serve"])
def test_every_result_is_fetched_through_either_worker(arch_server: Any, tmp_path: Path, command: str) -> None:
    config = long_config(delay=0.3, ttl_predicted_data=600)
    if command == "hypercorn":
        server = arch_server(config, *WORKERS)
    else:
        server = Server(config, directory=tmp_path, pythonpath=[HELPERS], command=CORE_SERVE).start()
    bodies = [{"X": [[float(i), float(j)] for j in range(1 + i % 3)], "scale": 1.0 + i % 2}
              for i in range(16)]
    bodies.append({"X": [[POISON, 1.0]]})  # fails: its error is fetched the same way
    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # new connections: both workers take some
        accepted = list(pool.map(
            lambda body: httpx.post(f"{server.url}/predict", json=body, headers={"Connection": "close"}),
            bodies))
    assert [response.status_code for response in accepted] == [202] * len(bodies)
    ids = [response.json()["predict_id"] for response in accepted]
    assert len(set(ids)) == len(ids)

    def fetch_three_times(predict_id: str) -> list[httpx.Response]:
        return [fresh_get(f"{server.url}/get-predict/{predict_id}") for _ in range(3)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # at once: most are still pending
        fetched = list(pool.map(fetch_three_times, ids))
    for body, predict_id, answers in zip(bodies[:-1], ids, fetched[:-1]):
        for answer in answers:
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"predict_result": expected(body)}, (body, answer.json())
            assert answer.headers["X-Predict-Id"] == predict_id
    for answer in fetched[-1]:
        assert answer.status_code == 500, answer.text
        detail = answer.json()["detail"][0]
        assert detail["type"] == "predict_error" and "poison" in detail["msg"]
    # Which worker accepts a connection is the kernel's choice, and under load one may take all
    # of them: ask again, on new connections, until a worker that did not run a prediction has
    # answered one from the store (results are kept 600 s).
    for attempt in range(200):
        workers = worker_pids(server.url)
        assert len(workers) == 2, "one worker process answered every /info"
        if sum(arch["results_from_store"] for arch in workers.values()) > 0:
            break
        answer = fresh_get(f"{server.url}/get-predict/{ids[attempt % (len(ids) - 1)]}")
        assert answer.status_code == 200, answer.text
    ran = {pid: arch["results_ready"] for pid, arch in workers.items()}
    assert sum(ran.values()) == len(bodies), ran
    from_store = {pid: arch["results_from_store"] for pid, arch in workers.items()}
    assert sum(from_store.values()) > 0, f"no worker answered a prediction another ran: {from_store}"
    for pid, count in from_store.items():  # only what the other worker ran comes from the store
        other = sum(ran.values()) - ran[pid]
        assert count == 0 or other > 0, (pid, from_store, ran)
    if isinstance(server, Server) and command == "core serve":
        server.stop()


def test_a_pending_result_is_waited_for_by_the_other_worker(arch_server: Any) -> None:
    server = arch_server(long_config(delay=2.0, ttl_client_wait=20), *WORKERS)
    bodies = [{"X": [[float(i), 2.0]]} for i in range(4)]
    ids = [httpx.post(f"{server.url}/predict", json=body, headers={"Connection": "close"}).json()["predict_id"]
           for body in bodies]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # two GETs per id, each on its own connection
        answers = list(pool.map(lambda predict_id: fresh_get(f"{server.url}/get-predict/{predict_id}"),
                                ids + ids))
    for body, answer in zip(bodies + bodies, answers):
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predict_result": expected(body)}
    assert time.perf_counter() - started < 15


def test_not_ready_after_ttl_client_wait_is_408_on_either_worker(arch_server: Any) -> None:
    server = arch_server(long_config(delay=5.0, ttl_client_wait=0.3), *WORKERS)
    predict_id = httpx.post(f"{server.url}/predict", json={"X": [[1.0, 2.0]]}).json()["predict_id"]
    for _ in range(6):
        answer = fresh_get(f"{server.url}/get-predict/{predict_id}")
        assert answer.status_code == 408, answer.text
        assert answer.headers["Retry-After"] == "1"
        assert "ttl_client_wait" in answer.json()["detail"][0]["msg"]


def test_unknown_and_expired_ids_are_404_on_either_worker(arch_server: Any) -> None:
    server = arch_server(long_config(ttl_predicted_data=2, ttl_client_wait=60), *WORKERS)
    for predict_id in ("0123456789abcdef0123456789abcdef", "a.b", "no-such-id"):
        started = time.perf_counter()
        answer = fresh_get(f"{server.url}/get-predict/{predict_id}")
        assert answer.status_code == 404 and time.perf_counter() - started < 10, answer.text
        assert answer.json()["detail"][0]["type"] == "not_found"
    predict_id = httpx.post(f"{server.url}/predict", json={"X": [[1.0, 2.0]]}).json()["predict_id"]
    assert fresh_get(f"{server.url}/get-predict/{predict_id}").status_code == 200
    time.sleep(2.5)
    for _ in range(4):
        expired = fresh_get(f"{server.url}/get-predict/{predict_id}")
        assert expired.status_code == 404, expired.text
        assert "ttl_predicted_data = 2 s" in expired.json()["detail"][0]["msg"]
