"""The admission gate (core.http.gate) on core's ``POST /predict``, against slow clients: a body
that trickles in holds no prediction slot and is cut at ``body_timeout``; the probes say when the
server is saturated; an expected error is never logged as a traceback."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from serving import object_config

ROWS = {"X": [[1, 2], [3, 4]]}
SLOTS = 8


def ticks(seconds: float, first: float = 0.5) -> list[float]:
    """Times (from now) to send the next byte: ``first``, then one a second, for ``seconds``."""
    start = time.monotonic()
    return [start + first + i for i in range(int(seconds))]


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def test_a_slow_body_holds_no_prediction_slot(serve, trickle):
    """Eight connections trickling their bodies with ``throttling_max_requests = 8``: ordinary
    requests are served all along, and the server says it is ready."""
    server = serve(object_config("models:sum_model", throttling_max_requests=SLOTS))
    slow = [trickle(server, "/predict") for _ in range(SLOTS)]
    statuses, ready = [], []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for moment in ticks(4):
            sleep_until(moment)
            for connection in slow:
                connection.tick()
            statuses += [client.post("/predict", json=ROWS).status_code for _ in range(5)]
            ready.append(client.get("/health/ready").status_code)
    assert statuses == [200] * len(statuses), statuses
    assert ready == [200] * len(ready)
    assert [c.received for c in slow] == [b""] * SLOTS  # still sending, still unanswered


def test_a_body_that_does_not_arrive_in_body_timeout_is_408_and_the_connection_closed(serve, trickle):
    """Half the slow bodies announce a Content-Length, half come chunked: each is answered 408
    at ``body_timeout`` and its connection closed by the server."""
    server = serve(object_config("models:sum_model", throttling_max_requests=SLOTS, body_timeout=2))
    slow = [trickle(server, "/predict", chunked=i % 2 == 1) for i in range(SLOTS)]
    started = time.monotonic()
    for moment in ticks(10):
        sleep_until(moment)
        for connection in slow:
            connection.tick()
        if all(c.received for c in slow):
            break
    for connection in slow:
        connection.read(timeout=5)  # the rest of the answer, then the server's EOF
        status, headers, body = connection.response()
        assert status == 408, connection.received
        assert headers["connection"] == "close"
        assert headers["content-type"] == "application/json"
        error = json.loads(body)
        assert error["detail"][0]["msg"] == "the body did not arrive within body_timeout = 2 s"
        assert error["detail"][0]["type"] == "timeout"
        assert error["predict_id"] == headers["x-predict-id"]
        assert connection.closed, "the server kept the connection open after its 408"
    assert time.monotonic() - started < 6
    assert httpx.post(f"{server.url}/predict", json=ROWS).json() == {"predict_result": [3.0, 7.0]}


def test_each_slow_body_gets_its_own_body_timeout_from_when_its_request_began(serve, trickle):
    """One timer watches every body being read (core.http.gate.BodyDeadlines): bodies that
    began at different times each get 408 at their own deadline, never before it (with no
    other request meanwhile to set the timer again)."""
    server = serve(object_config("models:sum_model", body_timeout=2))
    opened: list[tuple[float, object]] = []
    for index in range(3):  # deadlines 0.5 s apart, all set before the first one passes
        opened.append((time.monotonic(), trickle(server, "/predict", chunked=index == 1)))
        time.sleep(0.5)
    answered: dict[int, float] = {}
    for moment in ticks(12):
        sleep_until(moment)
        for index, (_, connection) in enumerate(opened):
            connection.tick()
            if connection.received and index not in answered:
                answered[index] = time.monotonic()
        if len(answered) == 3:
            break
    assert sorted(answered) == [0, 1, 2], "a slow body was never cut at body_timeout"
    for index, (began, connection) in enumerate(opened):
        connection.read(timeout=5)
        status, headers, _ = connection.response()
        assert status == 408 and headers["connection"] == "close"
        assert answered[index] - began >= 2.0, f"body {index} was cut before its body_timeout"
    assert httpx.post(f"{server.url}/predict", json=ROWS).json() == {"predict_result": [3.0, 7.0]}


def test_ready_is_503_while_saturated_and_live_stays_200(serve):
    server = serve(object_config("models:slow_model", throttling_max_requests=2, max_thread_loop_workers=4))

    async def scenario():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            before = await client.get("/health/ready")
            slow = [asyncio.create_task(client.post("/predict", json={"X": [[1]], "seconds": 1.5}))
                    for _ in range(2)]
            await asyncio.sleep(0.5)
            saturated = await client.get("/health/ready")
            live = await client.get("/health/live")
            refused = await client.post("/predict", json={"X": [[1]], "seconds": 0})
            done = await asyncio.gather(*slow)
            after = await client.get("/health/ready")
            return before, saturated, live, refused, done, after

    before, saturated, live, refused, done, after = asyncio.run(scenario())
    assert (before.status_code, before.json()) == (200, {"ready": True})
    assert saturated.status_code == 503
    assert saturated.json() == {"ready": False, "reason": "saturated: 2 predictions running "
                                                          "(throttling_max_requests = 2)"}
    assert (live.status_code, live.json()) == (200, {"live": True})
    assert refused.status_code == 429
    assert [r.status_code for r in done] == [200, 200]
    assert (after.status_code, after.json()) == (200, {"ready": True})


def test_expected_errors_are_answered_but_not_logged_as_tracebacks(serve):
    server = serve(object_config("models:sum_model", max_body_size=1000, throttling_max_request_len=2))
    url = f"{server.url}/predict"
    answers = [
        httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}),
        httpx.post(url, json={"X": [[1, 2]], "scale": "big"}),
        httpx.post(url, json={"X": [[1]] * 3}),
        httpx.post(url, json={"X": [[1.0] * 500]}),
        httpx.post(url, content=b'{"X": [[1]]}', headers={"content-type": "text/plain"}),
        httpx.post(url, content=b"x", headers={"content-type": "application/json", "content-encoding": "br"}),
    ]
    assert [a.status_code for a in answers] == [400, 422, 429, 413, 415, 415]
    assert all(len(a.json()["predict_id"]) == 32 for a in answers)
    log = server.log()
    assert "Traceback" not in log, log
    assert "Error" not in log, log
