"""The V2 REST endpoints for the model that ``core`` serves."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

import core
from core.components import Deferred
from core.errors import RequestError
from core.http import Admission, ErrorFormat, Service
from core_protocol_v2.codec import (
    HEADER_LENGTH,
    InferRequest,
    RequestedOutput,
    V2Error,
    decode_request,
    encode_response,
)
from core_protocol_v2.model import Adapter, adapter_for

logger = logging.getLogger("core")

EXTENSIONS = ["binary_tensor_data"]


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    import orjson

    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json", headers=headers)


def error(message: str, status: int = 400, headers: dict[str, str] | None = None) -> Response:
    """The protocol's error body, ``{"error": "..."}``."""
    return _json({"error": message}, status, headers)


#: The protocol's error format for the admission gate: ``{"error": "..."}``; a request that
#: does not fit the model (core's 422) is the protocol's 400.
V2_ERRORS = ErrorFormat(lambda problem, predict_id: {"error": problem.msg},
                        status=lambda problem: 400 if problem.status_code == 422 else problem.status_code)
#: What ``infer`` takes: JSON, or JSON followed by binary tensors (the binary extension).
INFER_BODIES = ("application/json", "application/octet-stream", "")


class V2Endpoints:
    """The handlers, bound to one application object."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.adapter: Adapter = adapter_for(service)

    def routes(self) -> list[BaseRoute]:
        """The endpoints; then, under ``/v2``, every other method of their paths (405) and
        every other path (404), answered with the protocol's ``{"error": ...}`` body that V2
        clients read (Starlette tries routes in order)."""
        gate = self.service.gate
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
            gate.route(model + "/infer", self.infer, accepts=INFER_BODIES, errors=V2_ERRORS),
            gate.route(version + "/infer", self.infer, accepts=INFER_BODIES, errors=V2_ERRORS),
        ]
        wrong_method: list[BaseRoute] = [
            Route(route.path, _ProtocolError(405, sorted(route.methods or ())), include_in_schema=False)
            for route in endpoints
        ]
        anything_else = Route("/v2/{path:path}", _ProtocolError(404), include_in_schema=False)
        return [*endpoints, *wrong_method, anything_else]

    # ------------------------------------------------------------------ helpers

    def _unknown(self, request: Request) -> Response | None:
        """A 404 when the path names another model or version."""
        try:
            self._check_model(request)
        except V2Error as problem:
            return error(problem.message, problem.status)
        return None

    def _check_model(self, request: Request) -> None:
        """Raise a 404 V2Error when the path names another model or version."""
        conf = self.service.conf
        name = request.path_params["model_name"]
        version = request.path_params.get("model_version")
        if name != conf.name:
            raise V2Error(f"unknown model {name!r}; this server serves {conf.name!r}", 404)
        if version not in (None, "", conf.version):
            raise V2Error(
                f"unknown version {version!r} of model {name!r}; the served version is "
                f"{conf.version!r}", 404,
            )

    def _is_ready(self) -> bool:
        return self.service.ready().ok

    # ------------------------------------------------------------------ endpoints

    async def server_metadata(self, request: Request) -> Response:
        return _json({"name": "core", "version": core.__version__, "extensions": EXTENSIONS})

    async def live(self, request: Request) -> Response:
        live = self.service.live().ok
        return _json({"live": live}, 200 if live else 503)

    async def ready(self, request: Request) -> Response:
        ready = self._is_ready()
        return _json({"ready": ready}, 200 if ready else 503)

    async def model_ready(self, request: Request) -> Response:
        unknown = self._unknown(request)
        if unknown is not None:
            return unknown
        ready = self._is_ready()
        return _json({"name": self.service.conf.name, "ready": ready}, 200 if ready else 503)

    async def model_metadata(self, request: Request) -> Response:
        unknown = self._unknown(request)
        if unknown is not None:
            return unknown
        conf = self.service.conf
        return _json({"name": conf.name, "versions": [conf.version], **self.adapter.metadata()})

    async def infer(self, admission: Admission) -> Any:
        """``POST .../infer``, behind the admission gate (which reads the body, undoing
        ``Content-Encoding``, and answers errors in :data:`V2_ERRORS`)."""
        request = admission.request
        self._check_model(request)
        # a large body is decoded in the gate's parser process: its tensors come back as arrays
        infer_request = await admission.parse(decode_request, request.headers.get(HEADER_LENGTH),
                                              large=decode_request)
        data = self._data(infer_request)
        result = await admission.predict(data)
        if isinstance(result, Deferred):  # a long prediction: answered 202 by the gate
            return result
        return self._answer(infer_request, result, {})

    def _data(self, infer_request: Any) -> dict[str, Any]:
        """The ``data`` an inference request gives the model."""
        try:
            return self.adapter.data(infer_request)
        except RequestError:
            raise
        except (ValueError, TypeError) as problem:
            raise V2Error(str(problem)) from None

    def _answer(self, infer_request: InferRequest, result: Any, headers: dict[str, str]) -> Response:
        """The response: the requested outputs (all of them when none is named), in request
        order, each converted only when it is answered."""
        conf = self.service.conf
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


def openapi_paths(service: Service) -> dict[str, Any]:
    """The V2 endpoints as OpenAPI paths (for core's OpenAPI document)."""
    conf = service.conf
    base = f"/v2/models/{conf.name}"
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
            "summary": f"V2 inference with {conf.name} (JSON, or the binary tensor data extension)",
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "required": ["inputs"], "properties": {
                    "id": {"type": "string"}, "parameters": {"type": "object"},
                    "inputs": {"type": "array", "items": tensor},
                    "outputs": {"type": "array", "items": {"type": "object", "properties": {
                        "name": {"type": "string"}, "parameters": {"type": "object"}}}}}}}}},
            "responses": {"200": {"description": "the outputs"}, "400": err, "404": err, "500": err},
        }},
    }
