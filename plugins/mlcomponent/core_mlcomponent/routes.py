"""``POST /inference``, ``GET /inference`` and ``GET /files/{name}``."""

from __future__ import annotations

import base64
import logging
import mimetypes
import os
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from core.components import Deferred
from core.errors import InvalidRequestBody, NotFound
from core.http import Admission, JSONResponse, Service, error_response, parse_json
from core_mlcomponent.model import InferenceFunctionModel, answer_error

logger = logging.getLogger("core")

#: The multipart field that carries the JSON request next to the file parts.
REQUEST_FIELD = "request"
#: What ``POST /inference`` takes: a JSON request, or a multipart form with files.
INFERENCE_BODIES = ("application/json", "multipart/form-data", "")
_TRUE = ("1", "true", "yes", "on")


class InferenceEndpoints:
    def __init__(self, service: Service, model: InferenceFunctionModel) -> None:
        self.service = service
        self.model = model

    def routes(self) -> list[BaseRoute]:
        return [
            self.service.gate.route("/inference", self.inference, accepts=INFERENCE_BODIES),
            Route("/inference", self.describe, methods=["GET"]),
            Route("/files/{name}", self.download, methods=["GET"], name="mlcomponent_file"),
        ]

    async def describe(self, request: Request) -> Response:
        return JSONResponse(self.model.describe())

    async def download(self, request: Request) -> Response:
        """``GET /files/{name}``: a file the server generated, streamed from the descriptor that
        was checked (never a symlink, see :meth:`FileExchange.open_generated`), else 404."""
        name = request.path_params["name"]
        exchange = self.model.exchange
        file = exchange.open_generated(name)
        if file is None:
            return error_response(NotFound(f"no file {name!r}: unknown, or expired after "
                                           f"{exchange.ttl:g}s", loc=["path", "name"]))
        original = name.split("-", 1)[1] if "-" in name else name  # generated: only safe characters
        media_type = mimetypes.guess_type(original)[0] or "application/octet-stream"
        return StreamingResponse(exchange.chunks(file), media_type=media_type, headers={
            "content-length": str(os.fstat(file.fileno()).st_size),
            "content-disposition": f'attachment; filename="{original}"',
        })

    async def inference(self, admission: Admission) -> Any:
        """``POST /inference``, behind the admission gate (ids, limits, throttling,
        ``predict_timeout``, errors)."""
        request = admission.request
        body, uploads = await self._read(admission)
        inline = request.query_params.get("inline", "").lower() in _TRUE or \
            (isinstance(body, dict) and body.get("inline_files") is True)
        call = await run_in_threadpool(self.model.prepare, body, uploads)
        result = await admission.predict({"requests": [call]})
        if isinstance(result, Deferred):  # a long prediction: answered 202 by the gate
            return result
        answer = result[0] if isinstance(result, list) else result
        if "error" in answer:
            raise answer_error(answer)
        outputs = await run_in_threadpool(self._present, answer["outputs"], request, inline)
        return {"outputs": outputs, "predict_id": admission.predict_id}

    async def _read(self, admission: Admission) -> tuple[Any, dict[str, list[tuple[bytes, str | None, str | None]]]]:
        content_type = admission.request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return await admission.parse(parse_json), {}
        try:
            form = await admission.form()
        except Exception as error:  # the multipart parser's own errors
            raise InvalidRequestBody(f"cannot read the multipart body: {error}", loc=["body"]) from None
        body: Any = {}
        uploads: dict[str, list[tuple[bytes, str | None, str | None]]] = {}
        try:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    content = await value.read()
                    uploads.setdefault(key, []).append((content, value.filename, value.content_type))
                elif key == REQUEST_FIELD:
                    body = parse_json(value.encode())
                else:
                    raise InvalidRequestBody(
                        f"unknown form field {key!r}; send the JSON request in the {REQUEST_FIELD!r} "
                        f"field and each file as a part named after its input", loc=["body", key])
        finally:
            await form.close()
        return body, uploads

    def _present(self, outputs: list[dict[str, Any]], request: Request, inline: bool) -> list[dict[str, Any]]:
        """FILE outputs as download links (and base64 content when asked)."""
        presented = []
        for output in outputs:
            output = dict(output)
            if output.get("datatype") == "FILE":
                names = output["data"] if isinstance(output["data"], list) else [output["data"]]
                links = [str(request.url_for("mlcomponent_file", name=n)) for n in names]
                output["data"] = links if isinstance(output["data"], list) else links[0]
                if inline:
                    contents = []
                    for name in names:
                        content = self.model.exchange.read(name)
                        contents.append(base64.b64encode(content).decode() if content is not None else None)
                    output["base64"] = contents if isinstance(output["data"], list) else contents[0]
            presented.append(output)
        return presented


def openapi_fragment(model: InferenceFunctionModel) -> dict[str, Any]:
    """``/inference`` and ``/files/{name}`` in OpenAPI, with the function's spec."""
    spec = model.spec
    json_types = {"FP32": {"type": "number"}, "FP64": {"type": "number"}, "INT32": {"type": "integer"},
                  "str": {"type": "string"}, "FILE": {"type": "string", "description": "an exchanged file"}}

    def variant(field: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "description": field.description,
            "required": ["name"] + (["data"] if field.datatype != "FILE" else []),
            "properties": {
                "name": {"const": field.name},
                "datatype": {"const": field.datatype} if field.datatype else {"type": "string"},
                "content_type": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer"}},
                "data": {"type": "array", "items": json_types.get(field.datatype or "", {})}
                if field.datatype != "FILE" else {"type": "string"},
                **({"base64": {"type": "string", "contentEncoding": "base64"}} if field.datatype == "FILE" else {}),
            },
        }

    input_schema: dict[str, Any] = (
        {"oneOf": [variant(f) for f in spec.inputs.values()]} if spec.inputs
        else {"type": "object", "required": ["name", "datatype"]}
    )
    request_schema = {
        "type": "object",
        "description": spec.summary,
        "properties": {
            "parameters": {"type": "array", "items": {}},
            "inputs": {"type": "array", "items": input_schema},
            "output_fields": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"enum": list(spec.outputs)} if spec.outputs else {"type": "string"},
                "datatype": {"type": "string"}}}},
            "inline_files": {"type": "boolean"},
        },
    }
    err = {"$ref": "#/components/schemas/Error"}
    return {
        "paths": {
            "/inference": {
                "post": {
                    "summary": f"Call {model.function_name}",
                    "description": "Inputs: " + "; ".join(
                        f"{f.name} ({f.datatype or 'any'}{', optional' if f.optional else ''}): {f.description}"
                        for f in spec.inputs.values()) + ". Outputs: " + "; ".join(
                        f"{f.name} ({f.datatype or 'any'}): {f.description}" for f in spec.outputs.values()),
                    "parameters": [{"name": "inline", "in": "query", "schema": {"type": "boolean"},
                                    "description": "also return FILE outputs as base64"}],
                    "requestBody": {"content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
                        "multipart/form-data": {"schema": {"type": "object", "properties": {
                            REQUEST_FIELD: {"type": "string", "description": "the JSON request"},
                            **{f.name: {"type": "string", "format": "binary"}
                               for f in spec.inputs.values() if f.datatype == "FILE"}}}},
                    }},
                    "responses": {
                        "200": {"description": "the function's outputs"},
                        "400": {"description": "bad request", "content": {"application/json": {"schema": err}}},
                        "422": {"description": "inputs do not match the specification",
                                "content": {"application/json": {"schema": err}}},
                        "500": {"description": "the function raised", "content": {"application/json": {"schema": err}}},
                    },
                },
                "get": {"summary": "The function's specification", "responses": {"200": {"description": "spec"}}},
            },
            "/files/{name}": {"get": {
                "summary": "Download an exchanged file",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the file"}, "404": {"description": "unknown or expired"}},
            }},
        },
        "components": {"schemas": {"InferenceRequest": request_schema}},
    }
