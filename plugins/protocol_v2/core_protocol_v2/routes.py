"""The V2 REST endpoints for the model that ``core`` serves."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

import core
from core.errors import CoreError, RequestError
from core.web import PREDICT_ID_HEADER, read_body
from core_protocol_v2.codec import (
    HEADER_LENGTH,
    InferRequest,
    RequestedOutput,
    V2Error,
    decode_request,
    decompress,
    encode_response,
)
from core_protocol_v2.model import Adapter, adapter_for

if TYPE_CHECKING:
    from core.up import UP

logger = logging.getLogger("core")

EXTENSIONS = ["binary_tensor_data"]


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    import orjson

    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json", headers=headers)


def error(message: str, status: int = 400, headers: dict[str, str] | None = None) -> Response:
    """The protocol's error body, ``{"error": "..."}``."""
    return _json({"error": message}, status, headers)


class V2Endpoints:
    """The handlers, bound to one application object."""

    def __init__(self, up: UP) -> None:
        self.up = up
        self.adapter: Adapter = adapter_for(up)

    def routes(self) -> list[BaseRoute]:
        """The endpoints; then, under ``/v2``, every other method of their paths (405) and
        every other path (404), answered with the protocol's ``{"error": ...}`` body that V2
        clients read (Starlette tries routes in order)."""
        model = "/v2/models/{model_name}"
        version = model + "/versions/{model_version}"
        endpoints = [
            Route("/v2", self.server_metadata, methods=["GET"]),
            Route("/v2/health/live", self.live, methods=["GET"]),
            Route("/v2/health/ready", self.ready, methods=["GET"]),
            Route(model, self.model_metadata, methods=["GET"]),
            Route(version, self.model_metadata, methods=["GET"]),
            Route(model + "/ready", self.model_ready, methods=["GET"]),
            Route(version + "/ready", self.model_ready, methods=["GET"]),
            Route(model + "/infer", self.infer, methods=["POST"]),
            Route(version + "/infer", self.infer, methods=["POST"]),
        ]
        wrong_method: list[BaseRoute] = [
            Route(route.path, _ProtocolError(405, sorted(route.methods or ())))
            for route in endpoints
        ]
        return [*endpoints, *wrong_method, Route("/v2/{path:path}", _ProtocolError(404))]

    # ------------------------------------------------------------------ helpers

    def _unknown(self, request: Request) -> Response | None:
        """A 404 when the path names another model or version."""
        conf = self.up.conf
        name = request.path_params["model_name"]
        version = request.path_params.get("model_version")
        if name != conf.name:
            return error(f"unknown model {name!r}; this server serves {conf.name!r}", 404)
        if version not in (None, "", conf.version):
            return error(
                f"unknown version {version!r} of model {name!r}; the served version is "
                f"{conf.version!r}", 404,
            )
        return None

    def _is_ready(self) -> bool:
        return bool(self.up.ml.loaded and self.up.web.accepting and self.up.web.started.is_set())

    # ------------------------------------------------------------------ endpoints

    async def server_metadata(self, request: Request) -> Response:
        return _json({"name": "core", "version": core.__version__, "extensions": EXTENSIONS})

    async def live(self, request: Request) -> Response:
        return _json({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self._is_ready()
        return _json({"ready": ready}, 200 if ready else 503)

    async def model_ready(self, request: Request) -> Response:
        unknown = self._unknown(request)
        if unknown is not None:
            return unknown
        ready = self._is_ready()
        return _json({"name": self.up.conf.name, "ready": ready}, 200 if ready else 503)

    async def model_metadata(self, request: Request) -> Response:
        unknown = self._unknown(request)
        if unknown is not None:
            return unknown
        conf = self.up.conf
        return _json({"name": conf.name, "versions": [conf.version], **self.adapter.metadata()})

    async def infer(self, request: Request) -> Response:
        unknown = self._unknown(request)
        if unknown is not None:
            return unknown
        web = self.up.web
        conf = self.up.conf
        predict_id = uuid.uuid4().hex
        headers = {PREDICT_ID_HEADER: predict_id}
        limit = conf.throttling_max_requests
        if limit is not None and web.active_predicts >= limit:
            return error(
                f"{web.active_predicts} predictions are running; the limit "
                f"(throttling_max_requests) is {limit}", 429, {**headers, "Retry-After": "1"},
            )
        web.active_predicts += 1
        try:
            if not web.accepting:
                return error("the server is shutting down", 503, {**headers, "Retry-After": "1"})
            body = await read_body(request, conf.max_body_size)
            body = decompress(body, request.headers.get("content-encoding"))
            infer_request = decode_request(body, request.headers.get(HEADER_LENGTH))
            data = self.adapter.data(infer_request)
            web.check_request_len(data)
            result = await self.up.plugins.hook.architecture_predict(
                architecture=web.architecture, data=data, predict_id=predict_id
            )
            if isinstance(result, Response):  # an architecture that answers on its own
                result.headers[PREDICT_ID_HEADER] = predict_id
                return result
            return self._answer(infer_request, result, headers)
        except V2Error as problem:
            return error(problem.message, problem.status, headers)
        except RequestError as problem:
            status = 400 if problem.status_code == 422 else problem.status_code
            return error(problem.msg, status, {**headers, **problem.headers})
        except CoreError as problem:
            return error(str(problem), 500, headers)
        except Exception as problem:  # a bug in a plugin: still the protocol's error body
            logger.exception("unexpected error in V2 infer (predict id %s)", predict_id)
            return error(f"{type(problem).__name__}: {problem}", 500, headers)
        finally:
            web.active_predicts -= 1

    def _answer(self, infer_request: InferRequest, result: Any, headers: dict[str, str]) -> Response:
        """The response: the requested outputs (all of them when none is named), in request
        order, each converted only when it is answered."""
        conf = self.up.conf
        values = self.adapter.results(result)
        requested = infer_request.outputs
        if requested is None:
            requested = [RequestedOutput(name) for name in values]
        chosen = []
        for wanted in requested:
            if wanted.name not in values:
                raise V2Error(
                    f"unknown output {wanted.name!r}; the model's outputs are "
                    f"{', '.join(map(repr, values))}"
                )
            binary = wanted.binary if wanted.binary is not None else infer_request.binary_output
            chosen.append((self.adapter.output(wanted.name, values[wanted.name], wanted.parameters), binary))
        header: dict[str, Any] = {"model_name": conf.name, "model_version": conf.version}
        if infer_request.id is not None:
            header["id"] = infer_request.id
        body, header_length = encode_response(header, chosen)
        if header_length is None:
            return Response(body, media_type="application/json", headers=headers)
        return Response(
            body, media_type="application/octet-stream",
            headers={**headers, HEADER_LENGTH: str(header_length)},
        )


class _ProtocolError:
    """An ASGI endpoint answering every request with one status in the protocol's error body:
    404 for a path the protocol does not have, 405 (with ``Allow``) for a method a path does
    not take."""

    def __init__(self, status: int, allowed: list[str] | None = None) -> None:
        self.status = status
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if self.allowed is None:
            response = error(
                f"{path} is not a V2 endpoint; this server has /v2, /v2/health/live, "
                f"/v2/health/ready and /v2/models/{{name}}[/versions/{{version}}][/ready|/infer]",
                self.status,
            )
        else:
            response = error(
                f"{method} is not allowed on {path}; use {' or '.join(self.allowed)}", self.status,
                {"Allow": ", ".join(self.allowed)},
            )
        await response(scope, receive, send)


def openapi_paths(up: UP) -> dict[str, Any]:
    """The V2 endpoints as OpenAPI paths (for core's OpenAPI document)."""
    base = f"/v2/models/{up.conf.name}"
    err = {"description": "error", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"}}}}}}
    tensor = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
        "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"}, "parameters": {"type": "object"},
        "data": {"type": "array", "description": "flat or nested, row-major"}}}
    return {
        "/v2": {"get": {"summary": "V2 server metadata", "responses": {"200": {"description": "metadata"}}}},
        "/v2/health/live": {"get": {"summary": "V2 liveness", "responses": {"200": {"description": "live"}}}},
        "/v2/health/ready": {"get": {"summary": "V2 readiness", "responses": {"200": {"description": "ready"}}}},
        base: {"get": {"summary": "V2 model metadata", "responses": {"200": {"description": "metadata"}, "404": err}}},
        f"{base}/ready": {"get": {"summary": "V2 model readiness",
                                  "responses": {"200": {"description": "ready"}, "404": err}}},
        f"{base}/infer": {"post": {
            "summary": f"V2 inference with {up.conf.name} (JSON, or the binary tensor data extension)",
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "required": ["inputs"], "properties": {
                    "id": {"type": "string"}, "parameters": {"type": "object"},
                    "inputs": {"type": "array", "items": tensor},
                    "outputs": {"type": "array", "items": {"type": "object", "properties": {
                        "name": {"type": "string"}, "parameters": {"type": "object"}}}}}}}}},
            "responses": {"200": {"description": "the outputs"}, "400": err, "404": err, "500": err},
        }},
    }
