"""How a request reaches a gated route (core.http.routing.App), on a real server: straight to
a gated route at a fixed path, with the scope Starlette would give it; through Starlette's
middleware and router whenever the app is changed in a way that could route it elsewhere (a
user middleware, a route before it that takes its path); and routes added while serving."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).parent


def dispatch_server(serve, mode: str = ""):
    return serve(None, pythonpath=[HERE, HERE.parent / "support"], env={"DISPATCH": mode},
                 command=[sys.executable, "-m", "hypercorn", "dispatch_app:app", "--bind", "127.0.0.1:{port}"])


@pytest.fixture(scope="module")
def server(serve_module):
    return dispatch_server(serve_module)


def test_a_gated_route_gets_the_scope_starlette_gives(server):
    r = httpx.get(f"{server.url}/scope")
    assert r.status_code == 200, r.text
    assert r.json() == {"route": "/scope", "endpoint_is_the_gate": True, "app_is_the_app": True,
                        "router_is_the_router": True, "path_params": {},
                        "url_for": f"{server.url}/scope"}
    assert len(r.headers["x-predict-id"]) == 32


def test_predict_answers_and_other_methods_and_paths_are_routed_as_before(server):
    r = httpx.post(f"{server.url}/predict", json={"X": [[1, 2], [3, 4]]})
    assert r.status_code == 200, r.text
    assert r.json() == {"predict_result": [3.0, 7.0]}
    wrong_method = httpx.get(f"{server.url}/predict")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["detail"][0]["type"] == "http_error"
    assert httpx.post(f"{server.url}/predict/", json={"X": [[1, 2]]}).status_code in (307, 404)
    assert httpx.post(f"{server.url}/nowhere", json={}).status_code == 404


def test_a_route_added_while_serving_is_served_behind_the_gate(server):
    assert httpx.get(f"{server.url}/late").status_code == 404
    assert httpx.post(f"{server.url}/add-late", json={}).json() == {"added": True}
    r = httpx.get(f"{server.url}/late")
    assert r.status_code == 200, r.text
    assert r.json() == {"late": True}
    assert len(r.headers["x-predict-id"]) == 32


def test_a_user_middleware_sees_every_request_to_a_gated_route(serve):
    server = dispatch_server(serve, "middleware")
    r = httpx.post(f"{server.url}/predict", json={"X": [[1, 2]]})
    assert r.status_code == 200, r.text
    assert r.headers["x-stamp"] == "middleware"
    assert r.json() == {"predict_result": [3.0]}
    refused = httpx.post(f"{server.url}/predict", json={"Y": 1})
    assert refused.status_code == 422 and refused.headers["x-stamp"] == "middleware"


def test_a_route_before_predict_that_takes_its_path_keeps_it(serve):
    """Starlette tries routes in order: one added before ``/predict`` that matches it wins."""
    server = dispatch_server(serve, "shadow")
    r = httpx.post(f"{server.url}/predict", json={"X": [[1, 2]]})
    assert r.status_code == 200, r.text
    assert r.json() == {"shadowed": "predict"}
    assert "x-predict-id" not in r.headers
    assert httpx.get(f"{server.url}/scope").status_code == 200  # GET: not that route's method
