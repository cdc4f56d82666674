"""The web app end to end: a real hypercorn server on 127.0.0.1 and a real HTTP client."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest
from serving import object_config


@pytest.fixture
def sum_server(serve):
    return serve(object_config("models:sum_model"))


def test_health_and_info(sum_server):
    health = httpx.get(f"{sum_server.url}/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    info = httpx.get(f"{sum_server.url}/info").json()
    assert info["name"] == "test-model"
    assert isinstance(info["process"]["pid"], int) and info["process"]["pid"] != os.getpid()
    assert info["model"]["outputs"] is None  # a Python model that declares none
    args = {a["name"]: a for a in info["model"]["arguments"]}
    assert args["X"]["is_rows"] and args["X"]["required"]
    assert args["scale"] == {**args["scale"], "kind": "float", "default": 1.0, "required": False}
    assert info["architecture"]["mode"] == "directly_to_predict"
    assert any(p["name"] == "core.builtin" for p in info["plugins"])


def test_predict_with_arguments_and_predict_id(sum_server):
    r = httpx.post(f"{sum_server.url}/predict", json={"X": [[1, 2], [3, 4]], "scale": 2.0, "offset": 1})
    assert r.status_code == 200, r.text
    assert r.json() == {"predict_result": [7.0, 15.0]}
    assert len(r.headers["X-Predict-Id"]) == 32


@pytest.mark.parametrize(
    ("body", "status", "loc", "fragment"),
    [
        (b"{not json", 400, ["body"], "invalid JSON"),
        (b"", 400, ["body"], "empty"),
        (b"[1, 2]", 422, ["body"], "JSON object"),
        (b'{"X": [[1, 2]], "scale": "big"}', 422, ["body", "scale"], "must be float"),
        (b'{"X": [[1, 2]], "bogus": 1}', 422, ["body", "bogus"], "unknown field"),
        (b'{"scale": 2}', 422, ["body", "X"], "field required"),
        (b'{"X": [[1, 2], [3]]}', 422, ["body", "X", 1], "expected 2 values"),
        (b'{"X": 5}', 422, ["body", "X"], "must be a list"),
        (b'{"X": [[1, 2]], "offset": 1.5}', 422, ["body", "offset"], "must be int"),
    ],
)
def test_bad_requests_are_json_errors_naming_the_field(sum_server, body, status, loc, fragment):
    r = httpx.post(f"{sum_server.url}/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    payload = r.json()
    assert payload["predict_id"] == r.headers["X-Predict-Id"]
    assert payload["detail"][0]["loc"] == loc
    assert fragment in payload["detail"][0]["msg"]


def test_model_error_is_a_json_500_with_the_message(serve):
    server = serve(object_config("models:failing_model"))
    r = httpx.post(f"{server.url}/predict", json={"X": [[1]]})
    assert r.status_code == 500
    assert "the model does not like these rows" in r.json()["detail"][0]["msg"]
    assert r.headers["content-type"] == "application/json"
    assert "X-Predict-Id" in r.headers


def test_body_size_limit(serve):
    server = serve(object_config("models:sum_model", max_body_size=1000))
    r = httpx.post(f"{server.url}/predict", json={"X": [[1.0] * 10] * 100})
    assert r.status_code == 413
    assert "max_body_size" in r.json()["detail"][0]["msg"]
    assert httpx.post(f"{server.url}/predict", json={"X": [[1.0]]}).status_code == 200


def test_request_len_throttling_accepts_up_to_the_limit(serve):
    server = serve(object_config("models:sum_model", throttling_max_request_len=3))
    assert httpx.post(f"{server.url}/predict", json={"X": [[1]] * 3}).json()["predict_result"] == [1, 1, 1]
    r = httpx.post(f"{server.url}/predict", json={"X": [[1]] * 4})
    assert r.status_code == 429
    assert "throttling_max_request_len" in r.json()["detail"][0]["msg"]


def test_empty_rows_answer_empty_without_calling_the_model(serve):
    server = serve(object_config("models:failing_model"))
    r = httpx.post(f"{server.url}/predict", json={"X": []})
    assert r.status_code == 200
    assert r.json() == {"predict_result": []}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("array", [[1.0, 2.0], [3.0, 4.0]]),
        ("scalar", 10.0),
        ("int", 2),
        ("list", [3.0, 7.0]),
        ("dict", {"sum": [3.0, 7.0], "n": 2, "labels": ["a", "a"]}),
        ("tuple", [[3.0, 7.0], [1.5, 3.5]]),
        ("plain", "hello"),
        ("none", None),
        ("nan", [None, 1.0]),
        ("object", [{"a": 1}]),
        ("float16", [[1.0, 2.0], [3.0, 4.0]]),
        ("transposed", [[1.0, 3.0], [2.0, 4.0]]),
    ],
)
def test_every_kind_of_result_becomes_json(serve, kind, expected, request):
    server = request.node.__dict__.setdefault("server", None) or serve(object_config("models:shapes_model"))
    r = httpx.post(f"{server.url}/predict", json={"X": [[1, 2], [3, 4]], "kind": kind})
    assert r.status_code == 200, r.text
    assert r.json()["predict_result"] == expected


@pytest.fixture
def tensor_server(serve):
    return serve(object_config("models:tensor_model"))


TENSORS_OK = {"X": [[1, 2.5]], "ids": [7], "flags": [True], "small": [255]}


def test_tensors_are_converted_to_their_declared_dtypes(tensor_server):
    body = {"X": [[None, 2.5], [1, "3"]], "ids": [7, 8.0], "flags": [True, 0], "small": [255, 0]}
    r = httpx.post(f"{tensor_server.url}/predict", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["predict_result"] == {
        "X": {"dtype": "float32", "values": [[None, 2.5], [1.0, 3.0]]},  # null is NaN, NaN is null
        "ids": {"dtype": "int64", "values": [7, 8]},
        "flags": {"dtype": "bool", "values": [True, False]},
        "small": {"dtype": "uint8", "values": [255, 0]},
    }


@pytest.mark.parametrize(
    ("field", "value", "loc", "fragment"),
    [
        ("X", [[1e39, 1]], ["body", "X", 0, 0], "out of the range of float32"),
        ("X", [[1, "one"]], ["body", "X", 0, 1], "must be a number (float32)"),
        ("ids", [7, 1.5], ["body", "ids", 1], "must be an integer (int64)"),
        ("ids", [7, None], ["body", "ids", 1], "must be an integer (int64)"),
        ("ids", ["7"], ["body", "ids", 0], "must be an integer (int64)"),
        ("ids", [2**70], ["body", "ids", 0], "out of the range of int64"),
        ("small", [256], ["body", "small", 0], "out of the range of uint8 (0 to 255)"),
        ("small", [-1.0], ["body", "small", 0], "out of the range of uint8"),
        ("flags", [True, 2], ["body", "flags", 1], "must be true or false"),
        ("flags", ["false"], ["body", "flags", 0], "must be true or false"),
    ],
)
def test_values_numpy_would_change_silently_are_422(tensor_server, field, value, loc, fragment):
    r = httpx.post(f"{tensor_server.url}/predict", json={**TENSORS_OK, field: value})
    assert r.status_code == 422, r.text
    assert [(d["loc"], fragment in d["msg"]) for d in r.json()["detail"]] == [(loc, True)], r.text


def test_columns_validate_dict_rows_and_fix_their_order(serve):
    columns = [
        {"name": "age", "type": "int"},
        {"name": "city", "type": "str"},
        {"name": "score", "type": "float", "required": False, "default": 0.5},
    ]
    server = serve(object_config("models:columns_model", columns=columns,
                                 data_transformer_for_predict="passthrough"))
    ok = httpx.post(f"{server.url}/predict", json={"X": [{"city": "Oslo", "age": 30}]})
    assert ok.status_code == 200, ok.text
    assert ok.json()["predict_result"] == [["30", "Oslo", "0.5"]]
    bad = httpx.post(f"{server.url}/predict",
                     json={"X": [{"age": "old", "city": "Oslo"}, {"city": "Rome", "zip": 1}]})
    assert bad.status_code == 422
    locs = {tuple(d["loc"]): d["msg"] for d in bad.json()["detail"]}
    assert "must be int" in locs[("body", "X", 0, "age")]
    assert locs[("body", "X", 1, "age")] == "field required"
    assert "unknown column" in locs[("body", "X", 1, "zip")]


def test_openapi_describes_the_real_request(sum_server):
    doc = httpx.get(f"{sum_server.url}/openapi.json").json()
    schema = doc["components"]["schemas"]["PredictRequest"]
    assert schema["required"] == ["X"]
    assert schema["properties"]["scale"] == {"type": "number", "default": 1.0}
    assert schema["properties"]["offset"]["type"] == "integer"
    assert "/predict" in doc["paths"]
    assert httpx.get(f"{sum_server.url}/docs").status_code == 200


def test_concurrency_limit_and_health_while_busy(serve):
    server = serve(object_config("models:slow_model", throttling_max_requests=2,
                                 max_thread_loop_workers=4))

    async def scenario():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            slow = [asyncio.create_task(client.post("/predict", json={"X": [[1]], "seconds": 1.0}))
                    for _ in range(2)]
            await asyncio.sleep(0.3)
            started = time.monotonic()
            health = await client.get("/health")
            health_time = time.monotonic() - started
            rejected = await client.post("/predict", json={"X": [[1]], "seconds": 0.01})
            done = await asyncio.gather(*slow)
            return health, health_time, rejected, done

    health, health_time, rejected, done = asyncio.run(scenario())
    assert health.status_code == 200
    assert health_time < 0.5  # the event loop is not blocked by the running predictions
    assert rejected.status_code == 429
    assert rejected.headers["Retry-After"]
    assert "throttling_max_requests" in rejected.json()["detail"][0]["msg"]
    assert [r.status_code for r in done] == [200, 200]
    assert done[0].json()["predict_result"] == [2]  # both ran at the same time: no global lock
    assert httpx.get(f"{server.url}/info").json()["architecture"]["inline_calls"] == 0


def test_many_concurrent_requests_each_get_their_own_answer(sum_server):
    async def scenario():
        async with httpx.AsyncClient(base_url=sum_server.url, timeout=30) as client:
            return await asyncio.gather(*[
                client.post("/predict", json={"X": [[i, 1]] * (i % 5 + 1)}) for i in range(200)
            ])

    for i, r in enumerate(asyncio.run(scenario())):
        assert r.status_code == 200
        assert r.json()["predict_result"] == [float(i + 1)] * (i % 5 + 1)


def test_quick_predictions_move_to_the_event_loop_and_stay_correct(sum_server):
    with httpx.Client(base_url=sum_server.url) as client:
        for i in range(30):
            r = client.post("/predict", json={"X": [[i, 2]], "scale": 2.0})
            assert r.json()["predict_result"] == [2.0 * (i + 2)]
        architecture = client.get("/info").json()["architecture"]
    assert architecture["max_inline_predict_ms"] == 0.25
    assert architecture["pool_calls"] >= 4  # timed in the pool first (core.runner.MIN_SAMPLES)
    assert architecture["inline_calls"] >= 10


def test_unknown_route_is_json_404(sum_server):
    r = httpx.get(f"{sum_server.url}/nope")
    assert r.status_code == 404
    assert r.json()["detail"][0]["type"] == "http_error"


def test_startup_failure_is_one_line(server_factory):
    server = server_factory({"storage_type": "nowhere"})
    _code, log = server.run_to_exit()  # hypercorn's parent reports 0 for a failed worker
    assert "core: cannot start: unknown storage 'nowhere'" in log
    assert "Traceback" not in log


def test_startup_failure_exits_1_with_workers_0(server_factory):
    """hypercorn's parent process reports 0 when its worker fails (pgjones/hypercorn#372);
    with ``--workers 0`` the app runs in the main process and its exit code 1 stands."""
    server = server_factory({"storage_type": "nowhere"}, hypercorn_args=["--workers", "0"])
    code, log = server.run_to_exit()
    assert code == 1, log
    assert "core: cannot start: unknown storage 'nowhere'" in log


def test_a_setting_that_would_be_ignored_stops_the_start(server_factory):
    server = server_factory(object_config("models:sum_model", data_transformer_for_predict="passthrough",
                                          dtype_for_predict="float32"))
    _code, log = server.run_to_exit()
    assert "core: cannot start: dtype_for_predict = 'float32' has no effect with " \
           "data_transformer_for_predict = 'passthrough'" in log
    assert "Traceback" not in log


def test_env_overrides_the_config_file(serve):
    server = serve(object_config("models:sum_model"), env={"CORE_NAME": "from-env"})
    assert httpx.get(f"{server.url}/info").json()["name"] == "from-env"


def test_predict_ids_are_random_hex_and_unique():
    from core.web import new_predict_id

    ids = [new_predict_id() for _ in range(5000)]  # several refills of the random buffer
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_full_collection_walks_only_what_requests_made(serve):
    """What start-up made (model, app, modules: tens of thousands of objects) is frozen out of
    the garbage collector's reach once the server starts, so that a full collection, landing
    in any request, walks only the few objects requests made since: not some 25 ms of walking
    during which no request moves, longer than a quick inline call's stall budget."""
    server = serve(object_config("models:tracked_model"))
    for _ in range(3):  # a few requests in, still only what they left
        response = httpx.post(f"{server.url}/predict", json={"X": [[1.0], [2.0]]})
        assert response.status_code == 200, response.text
        tracked = response.json()["predict_result"]
        assert len(tracked) == 2 and 0 < tracked[0] < 5_000, tracked
