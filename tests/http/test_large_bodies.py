"""Large bodies are read off the event loop (``Admission.parse``): in the gate's parser
process (:mod:`core.http.parser_process`), where a long JSON parse holds no GIL of the server,
so ``/health`` keeps answering while a 20 MiB request is read, validated and predicted."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import orjson
from serving import object_config

#: ~20 MiB of JSON numbers: about a second or more of parsing and converting.
ROWS = np.round(np.random.default_rng(7).random((80_000, 30)), 6)


def test_health_answers_while_a_large_body_is_parsed(serve):
    server = serve(object_config("models:sum_model", max_body_size=64 * 1024 * 1024))
    body = orjson.dumps({"X": ROWS.tolist()})
    assert len(body) > 16 * 1024 * 1024
    answer: dict[str, httpx.Response] = {}

    def big() -> None:
        answer["big"] = httpx.post(f"{server.url}/predict", content=body,
                                   headers={"content-type": "application/json"}, timeout=120)

    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/health").status_code == 200  # connected before the big one starts
        # warm up: the parser process starts with the first large body
        assert client.post("/predict", content=body, headers={"content-type": "application/json"},
                           timeout=120).status_code == 200
        sender = threading.Thread(target=big)
        began = last = time.monotonic()
        sender.start()
        pauses = []
        while sender.is_alive():
            assert client.get("/health").status_code == 200
            now = time.monotonic()
            pauses.append(now - last)
            last = now
            time.sleep(0.005)
        took = time.monotonic() - began
        sender.join()
    response = answer["big"]
    assert response.status_code == 200, response.text[:500]
    assert np.allclose(response.json()["predict_result"], ROWS.sum(axis=1))
    # While the body was parsed, validated and predicted, /health kept answering: its longest
    # pause is a small part of the request's time (parsing on the event loop, or in a thread of
    # the server, which holds the GIL through the whole JSON parse, pauses it for most of it).
    assert len(pauses) >= 10 and max(pauses) < took / 4, (max(pauses), took, len(pauses))


def test_a_large_invalid_body_is_a_precise_422(serve):
    server = serve(object_config("models:sum_model", max_body_size=64 * 1024 * 1024))
    rows = ROWS[:20_000].tolist()
    rows[12_345][3] = "oops"
    rows[15_000] = rows[15_000][:5]
    response = httpx.post(f"{server.url}/predict", json={"X": rows, "scale": "big"}, timeout=120)
    assert response.status_code == 422, response.text[:500]
    problems = {tuple(d["loc"]): d["msg"] for d in response.json()["detail"]}
    assert "must be float" in problems[("body", "scale")]
    assert response.json()["predict_id"] == response.headers["X-Predict-Id"]
