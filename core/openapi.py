"""The OpenAPI document, built from the analysed model so it describes the real request."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from core.analysis import Argument, Column

if TYPE_CHECKING:
    from core.analysis import ModelInterface
    from core.config import Config

_SCALAR = {"int": "integer", "float": "number", "str": "string", "bool": "boolean",
           "list": "array", "dict": "object"}
_DTYPE = {"b": "boolean", "i": "integer", "u": "integer", "f": "number", "c": "number"}


def _column_schema(column: Column) -> dict[str, Any]:
    if column.type not in _SCALAR:  # "any": a column derived from the model, any value
        return {}
    schema: dict[str, Any] = {"type": _SCALAR[column.type]}
    if column.collection_type is not None:  # a list of values of the column's type
        schema = {"type": "array", "items": schema}
    if column.default is not None:
        schema["default"] = column.default
    return schema


def argument_schema(argument: Argument, columns: tuple[Column, ...] | None) -> dict[str, Any]:
    """JSON Schema of one predict argument."""
    if argument.kind != "array":
        schema: dict[str, Any] = {"type": _SCALAR[argument.kind]} if argument.kind in _SCALAR else {}
        if not argument.required and argument.default is not None:
            schema["default"] = argument.default
        return schema
    if argument.is_rows and columns:
        row = {
            "type": "object",
            "properties": {c.name: _column_schema(c) for c in columns},
            "required": [c.name for c in columns if c.required],
            "additionalProperties": False,
        }
        return {"type": "array", "items": row, "description": "rows, one object per row"}
    if argument.fixed_width is not None:
        shape = argument.fixed_width
        value: dict[str, Any] = {}
        if shape.numbers:
            value = {"type": ["number", "null"]} if shape.nulls else {"type": "number"}
        row = {"type": "array", "items": value, "minItems": shape.width, "maxItems": shape.width}
        return {"type": "array", "items": row,
                "description": f"rows of {shape.width} values (the model's n_features_in_)"}
    tensor = argument.tensor
    if tensor is None:
        return {"type": "array", "items": {}, "description": "rows for the model"}
    import numpy as np

    leaf: dict[str, Any] = (
        {"type": "string"} if tensor.dtype == "string"
        else {"type": _DTYPE.get(np.dtype(tensor.dtype).kind, "number")}
    )
    schema = leaf
    for dim in reversed(tensor.shape or (None,)):
        schema = {"type": "array", "items": schema}
        if dim is not None:
            schema["minItems"] = schema["maxItems"] = dim
    schema["description"] = f"{tensor.dtype} tensor of shape {list(tensor.shape or [])}"
    return schema


def request_schema(interface: ModelInterface) -> dict[str, Any]:
    """JSON Schema of a ``POST /predict`` body for the analysed model."""
    return {
        "type": "object",
        "properties": {a.name: argument_schema(a, interface.columns) for a in interface.arguments},
        "required": [a.name for a in interface.arguments if a.required],
        "additionalProperties": False,
    }


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
        "predict_id": {"type": "string"},
    },
}


def document(conf: Config, interface: ModelInterface,
             extensions: Iterable[dict[str, Any] | None] = ()) -> dict[str, Any]:
    """The OpenAPI document: core's routes, then each plugin's ``extend_openapi`` answer."""
    errors = {
        str(code): {"description": text,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for code, text in [
            (400, "invalid JSON"), (408, "the body did not arrive within body_timeout"),
            (413, "body over max_body_size"), (415, "not a JSON body"), (422, "validation error"),
            (429, "throttled"), (500, "the model or a transformer failed"),
            (503, "shutting down"), (504, "the prediction did not finish in predict_timeout"),
        ]
    }
    probe = {"200": {"description": "yes"}, "503": {"description": "no, and why"}}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": conf.name, "version": conf.version},
        "paths": {
            "/predict": {
                "post": {
                    "summary": f"Predict with {conf.name}",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "the prediction",
                            "headers": {"X-Predict-Id": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {
                                "type": "object", "properties": {"predict_result": {}}}}},
                        },
                        **errors,
                    },
                }
            },
            "/health": {"get": {"summary": "The model is loaded (pymlup's health check)",
                                "responses": {"200": {"description": "loaded"}}}},
            "/health/live": {"get": {"summary": "Liveness: false when the process should be restarted",
                                     "responses": probe}},
            "/health/ready": {"get": {"summary": "Readiness: false while draining or saturated",
                                      "responses": probe}},
            "/info": {"get": {"summary": "Model, schema, architecture and plugins",
                              "responses": {"200": {"description": "info"}}}},
        },
        "components": {"schemas": {"PredictRequest": request_schema(interface), "Error": ERROR_SCHEMA}},
    }
    for extra in extensions:
        if extra:
            document["paths"].update(extra.get("paths", {}))
            document["components"]["schemas"].update(extra.get("components", {}).get("schemas", {}))
    return document


SWAGGER_HTML = """<!doctype html>
<html><head><title>{title} - API docs</title><meta charset="utf-8">
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "openapi.json", dom_id: "#ui"});</script>
</body></html>"""

#: ReDoc's page (pymlup served it at /redoc, as FastAPI does); like Swagger UI above, it loads
#: its script from a CDN in the reader's browser.
REDOC_HTML = """<!doctype html>
<html><head><title>{title} - API reference</title><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
</head><body><redoc spec-url="openapi.json"></redoc>
<script src="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"></script>
</body></html>"""
