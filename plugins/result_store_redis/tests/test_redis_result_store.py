"""The ``redis`` result store: the contract suite against a real redis-server, and two core
servers (two hypercorn processes, standing for two machines) sharing it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from typing import Any

import httpx
import pytest
from core.components import ResultState
from core.errors import ConfigError
from core.ml import build
from core.testing import ResultStoreContract, free_port

from core_result_store_redis import RedisResultStore


class TestRedisResultStoreContract(ResultStoreContract):
    name = "redis"

    @pytest.fixture
    def result_store(self, redis_url: str) -> RedisResultStore:
        return RedisResultStore(url=redis_url, prefix=f"test-{uuid.uuid4().hex}:")


def test_keys_carry_the_prefix_and_expire_in_redis(redis_url: str) -> None:
    import redis

    store = RedisResultStore(url=redis_url, prefix="prefixed:")

    async def write() -> None:
        await store.start()
        await store.put_pending("abc", 30)
        await store.put("def", b"answer", 60)
        await store.close()

    asyncio.run(write())
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.get("prefixed:abc") == b"P" and client.get("prefixed:def") == b"Ranswer"
        assert 25_000 < client.pttl("prefixed:abc") <= 30_000
        assert 55_000 < client.pttl("prefixed:def") <= 60_000
    finally:
        client.close()


def test_two_stores_with_other_prefixes_do_not_see_each_other(redis_url: str) -> None:
    async def check() -> tuple[Any, Any]:
        first = RedisResultStore(url=redis_url, prefix="one:")
        second = RedisResultStore(url=redis_url, prefix="two:")
        await first.put("same-id", b"one's", 60)
        try:
            return await first.get("same-id"), await second.get("same-id")
        finally:
            await first.close()
            await second.close()

    assert asyncio.run(check()) == ((ResultState.READY, b"one's"), (ResultState.MISSING, None))


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"url": "http://127.0.0.1:6379"}, "url 'http://127.0.0.1:6379'"),
    ({"url": ""}, "url must be a redis:// URL"),
    ({"prefix": 3}, "prefix must be a string"),
])
def test_bad_settings_are_one_config_line(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build("result store", RedisResultStore, kwargs, "result_store_kwargs")
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_an_unreachable_redis_is_one_line_at_start_without_the_password() -> None:
    store = RedisResultStore(url=f"redis://:secret@127.0.0.1:{free_port()}/0")
    with pytest.raises(ConfigError) as caught:
        asyncio.run(store.start())
    message = str(caught.value)
    assert message.startswith("result_store_type = 'redis': cannot reach redis://127.0.0.1:")
    assert "secret" not in message and "\n" not in message


# ---------------------------------------------------------------------- two servers, one Redis


def config(redis_url: str, prefix: str, **settings: Any) -> dict[str, Any]:
    return {"name": "slow-sum", "storage_type": "slow_models.SlowStorage",
            "storage_kwargs": {"delay": settings.pop("delay", 0.0)}, "mode": "worker_and_queue",
            "is_long_predict": True, "result_store_type": "redis",
            "result_store_kwargs": {"url": redis_url, "prefix": prefix}, "log_level": "WARNING",
            **settings}


def expected(body: dict[str, Any]) -> list[float]:
    return [sum(row) * body.get("scale", 1.0) for row in body["X"]]


def test_a_result_accepted_by_one_server_is_fetched_from_the_other(
        redis_url: str, core_server: Any) -> None:
    prefix = f"e2e-{uuid.uuid4().hex}:"
    first = core_server(config(redis_url, prefix, delay=1.0, ttl_client_wait=20))
    second = core_server(config(redis_url, prefix, delay=1.0, ttl_client_wait=20))
    bodies = [{"X": [[float(i), 1.0], [2.0, float(i)]], "scale": 1.0 + i % 2} for i in range(6)]
    bodies.append({"X": [[-1.0, 1.0]]})  # the model raises: the other server answers the same error
    accepted = [httpx.post(f"{first.url}/predict", json=body) for body in bodies]
    assert [response.status_code for response in accepted] == [202] * len(bodies)
    ids = [response.json()["predict_id"] for response in accepted]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(ids)) as pool:  # still pending on the first
        on_second = list(pool.map(
            lambda i: httpx.get(f"{second.url}/get-predict/{i}", timeout=30), ids))
    assert time.perf_counter() - started < 15
    for body, answer in zip(bodies[:-1], on_second[:-1]):
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predict_result": expected(body)}
    on_first = httpx.get(f"{first.url}/get-predict/{ids[-1]}")
    assert on_second[-1].status_code == on_first.status_code == 500
    assert on_second[-1].json() == on_first.json()
    assert on_second[-1].json()["detail"][0]["type"] == "predict_error"
    again = httpx.get(f"{second.url}/get-predict/{ids[0]}")  # fetched again until it expires
    assert again.json() == {"predict_result": expected(bodies[0])}


def test_unknown_and_expired_ids_are_404_on_the_other_server(
        redis_url: str, core_server: Any) -> None:
    prefix = f"e2e-{uuid.uuid4().hex}:"
    first = core_server(config(redis_url, prefix, ttl_predicted_data=1))
    second = core_server(config(redis_url, prefix, ttl_predicted_data=1))
    unknown = httpx.get(f"{second.url}/get-predict/0123456789abcdef0123456789abcdef")
    assert unknown.status_code == 404 and unknown.json()["detail"][0]["type"] == "not_found"
    predict_id = httpx.post(f"{first.url}/predict", json={"X": [[1.0, 2.0]]}).json()["predict_id"]
    fetched = httpx.get(f"{second.url}/get-predict/{predict_id}", timeout=30)
    assert fetched.json() == {"predict_result": [3.0]}
    time.sleep(1.5)
    assert httpx.get(f"{second.url}/get-predict/{predict_id}").status_code == 404
    assert httpx.get(f"{first.url}/get-predict/{predict_id}").status_code == 404


def test_a_server_whose_redis_is_unreachable_does_not_start(tmp_path: Any) -> None:
    from conftest import HERE
    from core.testing import Server

    server = Server(config(f"redis://127.0.0.1:{free_port()}/0", "x:"), directory=tmp_path,
                    pythonpath=[HERE])
    _, log = server.run_to_exit(timeout=60)  # hypercorn exits 0 when its worker cannot start
    assert "result_store_type = 'redis': cannot reach redis://127.0.0.1:" in log, log
    assert "Traceback" not in log, log
