"""``hypercorn routes_app:app``: a UP built in Python with the routes a user adds, the way the
seeds' life-cycle example adds them (``up.web.app.add_api_route`` and ``@up.web.app.post``).
Served by the route tests (tests/http/test_routing.py); ``app`` runs the UP's lifespan."""

from __future__ import annotations

import threading
import time

from models import sum_model
from starlette.exceptions import HTTPException
from starlette.requests import Request

import core
from core.errors import NotFound

# core's test storage hands the model over: core alone, no storage plugin needed
up = core.UP(ml_model=sum_model, conf=core.Config(name="routes", max_body_size=2000, predict_timeout=2,
                                                  storage_type="core.testing.contracts.ContractStorage"))
up.ml.load()
up.web.load()

#: Two handlers meet here: only if each runs in its own thread, off the event loop.
rendezvous = threading.Barrier(2, timeout=10)


def read_item(item_id: int, q: int = 1, tag: str = "none") -> dict:
    """Read an item."""
    return {"item_id": item_id, "q": q, "tag": tag, "types": [type(item_id).__name__, type(q).__name__]}


def echo(payload: dict) -> dict:
    """Echo a JSON object."""
    return {"got": payload, "on_event_loop": threading.current_thread() is threading.main_thread()}


def meet() -> dict:
    """Wait for a second request to arrive (sync: in a thread)."""
    rendezvous.wait()
    return {"met": True, "on_event_loop": threading.current_thread() is threading.main_thread()}


def slow(payload: dict) -> dict:
    time.sleep(float(payload.get("seconds", 5)))
    return {"slept": True}


def find(name: str) -> dict:
    """Refuse as FastAPI users do (HTTPException) and as core does (a RequestError)."""
    if name == "http":
        raise HTTPException(404, f"no item named {name!r}", headers={"X-Reason": "unknown"})
    raise NotFound(f"no item named {name!r}", loc=["query", "name"])


def agent(request: Request) -> dict:
    return {"user_agent": request.headers.get("user-agent"), "path": request.url.path}


up.web.app.add_api_route("/items/{item_id}", read_item)
up.web.app.add_api_route("/echo", echo, methods=["POST"])
up.web.app.add_api_route("/meet", meet)
up.web.app.add_api_route("/slow", slow, methods=["POST"])
up.web.app.add_api_route("/agent", agent)
up.web.app.add_api_route("/find", find, methods=["GET", "POST"])


@up.web.app.post("/double")
async def double(payload: dict) -> dict:
    """Double each value."""
    return {"doubled": [2 * v for v in payload["values"]]}


app = up.web.app
