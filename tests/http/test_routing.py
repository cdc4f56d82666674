"""Routes a user adds (core.http.routing), as FastAPI users add them, on a real server that
builds its UP in Python (``routes_app.py``): parameters from the path, the query and the body,
the decorator form, sync handlers off the event loop, ``/openapi.json``, and the gate."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def server(serve_module):
    return serve_module(None, pythonpath=[HERE, HERE.parent / "support"],
                        command=[sys.executable, "-m", "hypercorn", "routes_app:app", "--bind", "127.0.0.1:{port}"])


def test_path_and_query_parameters_are_converted(server):
    r = httpx.get(f"{server.url}/items/42", params={"q": "7", "tag": "new"})
    assert r.status_code == 200, r.text
    assert r.json() == {"item_id": 42, "q": 7, "tag": "new", "types": ["int", "int"]}
    assert httpx.get(f"{server.url}/items/5").json()["q"] == 1  # the default


@pytest.mark.parametrize(("url", "loc", "fragment"), [
    ("/items/42?q=x", ["query", "q"], "must be integer, got 'x'"),
    ("/items/abc", ["path", "item_id"], "must be integer, got 'abc'"),
])
def test_a_parameter_that_does_not_convert_is_422_naming_it(server, url, loc, fragment):
    r = httpx.get(f"{server.url}{url}")
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"loc": loc, "msg": fragment, "type": "type_error"}]


def test_a_handler_taking_a_json_body(server):
    r = httpx.post(f"{server.url}/echo", json={"a": [1, 2], "b": "x"})
    assert r.status_code == 200, r.text
    assert r.json() == {"got": {"a": [1, 2], "b": "x"}, "on_event_loop": False}
    assert len(r.headers["X-Predict-Id"]) == 32
    wrong = httpx.post(f"{server.url}/echo", json=[1, 2])
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["body"]


def test_the_decorator_form(server):
    r = httpx.post(f"{server.url}/double", json={"values": [1, 2.5]})
    assert r.status_code == 200, r.text
    assert r.json() == {"doubled": [2, 5.0]}


def test_a_handler_taking_the_request(server):
    r = httpx.get(f"{server.url}/agent", headers={"user-agent": "tester/1"})
    assert r.json() == {"user_agent": "tester/1", "path": "/agent"}


def test_sync_handlers_run_off_the_event_loop(server):
    """``/meet`` waits for a second ``/meet``: the two only meet if neither blocks the loop."""

    async def both():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(client.get("/meet"), client.get("/meet"))

    for r in asyncio.run(both()):
        assert r.status_code == 200, r.text
        assert r.json() == {"met": True, "on_event_loop": False}


def test_a_post_route_passes_the_gate(server):
    too_large = httpx.post(f"{server.url}/echo", json={"a": "x" * 3000})
    assert too_large.status_code == 413
    assert "max_body_size" in too_large.json()["detail"][0]["msg"]
    form = httpx.post(f"{server.url}/echo", content=b'{"a": 1}', headers={"content-type": "text/plain"})
    assert form.status_code == 415
    for r in (too_large, form):
        assert r.json()["predict_id"] == r.headers["X-Predict-Id"]
    slow = httpx.post(f"{server.url}/slow", json={"seconds": 5}, timeout=30)
    assert slow.status_code == 504
    assert "predict_timeout = 2 s" in slow.json()["detail"][0]["msg"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_refusal_in_a_handler_is_its_status_in_core_format_without_a_traceback(server, method):
    by_http = httpx.request(method, f"{server.url}/find", params={"name": "http"}, json={})
    assert by_http.status_code == 404, by_http.text
    assert by_http.headers["X-Reason"] == "unknown"
    assert by_http.json()["detail"] == [{"loc": [], "msg": "no item named 'http'", "type": "http_error"}]
    by_core = httpx.request(method, f"{server.url}/find", params={"name": "core"}, json={})
    assert by_core.status_code == 404, by_core.text
    assert by_core.json()["detail"] == [{"loc": ["query", "name"], "msg": "no item named 'core'",
                                         "type": "not_found"}]
    for r in (by_http, by_core):
        assert r.json()["predict_id"] == r.headers["X-Predict-Id"]
    assert "Traceback" not in server.log(), server.log()


def test_custom_routes_are_in_openapi_with_their_parameters(server):
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert "/predict" in paths
    item = paths["/items/{item_id}"]["get"]
    assert item["summary"] == "Read an item."
    assert item["parameters"] == [
        {"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}},
        {"name": "q", "in": "query", "required": False, "schema": {"type": "integer", "default": 1}},
        {"name": "tag", "in": "query", "required": False, "schema": {"type": "string", "default": "none"}},
    ]
    echo = paths["/echo"]["post"]
    assert echo["requestBody"]["content"]["application/json"]["schema"] == {"type": "object"}
    assert echo["requestBody"]["required"] is True
    assert paths["/double"]["post"]["summary"] == "Double each value."
    assert "post" not in paths["/items/{item_id}"]
