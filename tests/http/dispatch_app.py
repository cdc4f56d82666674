"""``hypercorn dispatch_app:app``: a UP built in Python whose app is changed the ways that
decide how a request reaches a gated route (core.http.routing.App): ``DISPATCH=middleware``
adds a user middleware, ``DISPATCH=shadow`` puts a route taking any one-segment path before
``/predict``; without it, the app is as built, plus routes that report their scope and add a
route while serving. Served by tests/http/test_dispatch.py."""

from __future__ import annotations

import os
from typing import Any

from models import sum_model
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import core

# core's test storage hands the model over: core alone, no storage plugin needed
up = core.UP(ml_model=sum_model, conf=core.Config(name="dispatch",
                                                  storage_type="core.testing.contracts.ContractStorage"))
up.ml.load()
up.web.load()
app = up.web.app
MODE = os.environ.get("DISPATCH", "")


class Stamp:
    """A user's ASGI middleware: every answer says it went through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def stamped(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-stamp", b"middleware")]
            await send(message)

        await self.inner(scope, receive, stamped)


async def any_segment(request: Request) -> JSONResponse:
    return JSONResponse({"shadowed": request.path_params["name"]})


if MODE == "middleware":
    app.add_middleware(Stamp)
elif MODE == "shadow":
    app.router.routes.insert(0, Route("/{name}", any_segment, methods=["POST"]))


def scope_of(request: Request) -> dict:
    """What Starlette puts in the scope of a request it routes."""
    scope = request.scope
    return {"route": scope["route"].path, "endpoint_is_the_gate": scope["endpoint"] is scope["route"].app,
            "app_is_the_app": request.app is app, "router_is_the_router": scope["router"] is app.router,
            "path_params": request.path_params, "url_for": str(request.url_for("scope_of"))}


def late() -> dict:
    return {"late": True}


def add_late() -> dict:
    """Add a route while the app serves."""
    app.add_api_route("/late", late)
    return {"added": True}


app.add_api_route("/scope", scope_of, name="scope_of")
app.add_api_route("/add-late", add_late, methods=["POST"])
