"""Routes users add, the way FastAPI users add them: ``add_api_route`` and decorators.

``up.web.app`` is an :class:`App`. A handler added with ``app.add_api_route(path, handler)`` or
``@app.get(path)`` / ``@app.post(path)`` / ``@app.api_route(path, methods=[...])`` gets its
arguments from the request by their names and annotations, as in FastAPI:

* a parameter named in the path (``/items/{item_id}``) takes the path parameter;
* a parameter annotated ``starlette.requests.Request`` (or named ``request`` without an
  annotation) takes the request, and one annotated :class:`core.http.Admission` the admission;
* a parameter annotated ``int``, ``float``, ``bool`` or ``str`` (or unannotated with such a
  default, or none) takes the query parameter of its name: required without a default;
* a parameter annotated ``dict``, ``list`` (or ``typing.Any`` in a body method) takes the JSON
  body: the whole body when it is the only one, else the body's key of its name.

A value that does not convert is a 422 naming it (``["query", "q"]``). A synchronous handler
runs in a thread, so it may block. What it returns is sent as JSON unless it is a Starlette
``Response``.

Every such route passes the admission gate (:mod:`core.http.gate`): predict id, errors in
core's format, and for methods that carry a body (POST, PUT, PATCH) the content type, the body
limits, a prediction slot and ``predict_timeout`` on the whole handler. Each appears in
``/openapi.json`` with its parameters and body. (Starlette's own ``add_route`` still mounts a
plain endpoint, outside the gate and the document.)
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route, compile_path
from starlette.types import Receive, Scope, Send

from core.errors import ValidationError
from core.http.body import parse_json
from core.http.gate import BODY_METHODS, JSON_BODIES, Admission, Gate, GatedEndpoint

_SCALARS: dict[Any, str] = {int: "integer", float: "number", bool: "boolean", str: "string"}
_BODIES: dict[Any, str] = {dict: "object", list: "array"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@attrs.frozen
class Parameter:
    """Where one handler argument comes from: ``source`` is ``path``, ``query``, ``body``,
    ``request`` or ``admission``."""

    name: str
    source: str
    kind: Any = None
    required: bool = True
    default: Any = None


def _annotation_kind(annotation: Any) -> Any:
    """``int`` for ``int``, ``Optional[int]`` and ``int | None``; the type itself otherwise."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else Any
    if origin in (dict, list):
        return origin
    return annotation


def plan(handler: Callable[..., Any], path: str, methods: Sequence[str]) -> list[Parameter]:
    """Where each argument of ``handler`` comes from (see the module docstring)."""
    _, _, converters = compile_path(path)
    path_names = set(converters)
    try:
        hints = typing.get_type_hints(handler)
    except Exception:
        hints = {}
    has_body = any(m.upper() in BODY_METHODS for m in methods)
    params = []
    for param in inspect.signature(handler).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, param.annotation)
        kind = _annotation_kind(annotation)
        required = param.default is inspect.Parameter.empty
        default = None if required else param.default
        if (isinstance(kind, type) and issubclass(kind, Request)) or \
                (param.name == "request" and annotation is inspect.Parameter.empty):
            params.append(Parameter(param.name, "request"))
        elif kind is Admission:
            params.append(Parameter(param.name, "admission"))
        elif param.name in path_names:
            params.append(Parameter(param.name, "path", _scalar(kind, default)))
        elif kind in _BODIES or (has_body and kind is Any):
            params.append(Parameter(param.name, "body", kind, required, default))
        else:
            params.append(Parameter(param.name, "query", _scalar(kind, default), required, default))
    return params


def _scalar(kind: Any, default: Any) -> Any:
    if kind in _SCALARS:
        return kind
    if kind is inspect.Parameter.empty and type(default) in _SCALARS:
        return type(default)
    return str


def _convert(value: str, kind: Any, loc: list[str | int]) -> Any:
    try:
        if kind is bool:
            lowered = value.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                raise ValueError
            raise ValueError
        return kind(value)
    except ValueError:
        raise ValidationError([{"loc": loc, "msg": f"must be {_SCALARS.get(kind, 'a string')}, "
                                                  f"got {value!r}", "type": "type_error"}]) from None


class BoundHandler:
    """A user's handler with its arguments taken from each admitted request."""

    def __init__(self, handler: Callable[..., Any], params: list[Parameter]) -> None:
        self.handler = handler
        self.params = params
        self.is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            type(handler).__call__)
        self.bodies = [p for p in params if p.source == "body"]

    async def __call__(self, admission: Admission) -> Any:
        kwargs = self.arguments(admission)
        if self.is_async:
            return await self.handler(**kwargs)
        loop = asyncio.get_running_loop()  # in the request's context: its log lines carry its id
        return await loop.run_in_executor(None, contextvars.copy_context().run,
                                          functools.partial(self.handler, **kwargs))

    def arguments(self, admission: Admission) -> dict[str, Any]:
        request = admission.request
        body: Any = None
        if self.bodies and admission.body:
            body = parse_json(admission.body)
        elif len(self.bodies) > 1:
            body = {}
        kwargs: dict[str, Any] = {}
        problems: list[dict[str, Any]] = []
        for param in self.params:
            if param.source == "request":
                kwargs[param.name] = request
            elif param.source == "admission":
                kwargs[param.name] = admission
            elif param.source == "path":
                value = request.path_params[param.name]
                kwargs[param.name] = value if not isinstance(value, str) else \
                    _convert(value, param.kind, ["path", param.name])
            elif param.source == "query":
                raw = request.query_params.get(param.name)
                if raw is None:
                    if param.required:
                        problems.append({"loc": ["query", param.name], "msg": "field required",
                                         "type": "missing"})
                    kwargs[param.name] = param.default
                else:
                    try:
                        kwargs[param.name] = _convert(raw, param.kind, ["query", param.name])
                    except ValidationError as error:
                        problems += error.details
            else:
                value = body if len(self.bodies) == 1 else (
                    body.get(param.name, param.default) if isinstance(body, dict) else None)
                problem = _body_problem(param, value, len(self.bodies) == 1)
                if problem:
                    problems.append(problem)
                kwargs[param.name] = value
        if problems:
            raise ValidationError(problems)
        return kwargs


def _body_problem(param: Parameter, value: Any, whole: bool) -> dict[str, Any] | None:
    loc: list[str | int] = ["body"] if whole else ["body", param.name]
    if value is None:
        return {"loc": loc, "msg": "field required", "type": "missing"} if param.required else None
    if param.kind in _BODIES and not isinstance(value, param.kind):
        return {"loc": loc, "msg": f"must be {_BODIES[param.kind]}", "type": "type_error"}
    return None


def openapi_operation(handler: Callable[..., Any], params: list[Parameter], name: str | None) -> dict[str, Any]:
    """The OpenAPI operation of a user's route: summary, parameters, body, responses."""
    doc = inspect.getdoc(handler) or ""
    operation: dict[str, Any] = {
        "summary": doc.splitlines()[0] if doc else (name or getattr(handler, "__name__", "route")),
        "operationId": name or getattr(handler, "__name__", None),
        "responses": {
            "200": {"description": "the handler's answer"},
            "422": {"description": "a parameter does not match",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    }
    parameters = [
        {"name": p.name, "in": p.source, "required": p.source == "path" or p.required,
         "schema": {"type": _SCALARS.get(p.kind, "string"),
                    **({"default": p.default} if p.default is not None else {})}}
        for p in params if p.source in ("path", "query")
    ]
    if parameters:
        operation["parameters"] = parameters
    bodies = [p for p in params if p.source == "body"]
    if len(bodies) == 1:
        schema: dict[str, Any] = {"type": _BODIES[bodies[0].kind]} if bodies[0].kind in _BODIES else {}
    else:
        schema = {"type": "object", "properties": {
            p.name: ({"type": _BODIES[p.kind]} if p.kind in _BODIES else {}) for p in bodies},
            "required": [p.name for p in bodies if p.required]}
    if bodies:
        operation["requestBody"] = {"required": any(p.required for p in bodies),
                                    "content": {"application/json": {"schema": schema}}}
    return operation


class App(Starlette):
    """The Starlette app ``up.web.app``, plus FastAPI's ways of adding routes
    (``add_api_route``, ``get``/``post``/... decorators), each behind the admission gate."""

    gate: Gate | None = None
    #: What ``predict_timeout`` is for the whole handler of a user's body route.
    handler_timeout: float | None = None

    def __init__(self, *args: Any, gate: Gate | None = None, handler_timeout: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate
        self.handler_timeout = handler_timeout
        #: OpenAPI paths of the routes added with add_api_route and the decorators.
        self.api_paths: dict[str, dict[str, Any]] = {}
        self._gated: dict[tuple[str, str], Route] = {}
        self._gated_of = -1  # how many routes there were when _gated was made

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Starlette's dispatch, but that a request for a gated route at a fixed path
        (``POST /predict``) goes straight to it.

        Starlette passes each request through its error and exception middleware, then tries
        the routes in order: about 5 us a request, spent on layers that a gated route does not
        use (the gate answers every error itself, :mod:`core.http.gate`). The request gets
        the scope Starlette would give it (``app``, ``router``, ``route``, ``endpoint``,
        ``path_params``), and goes the usual way whenever Starlette could do something else
        with it: a middleware was added (``add_middleware``), the app limits bodies itself,
        the server mounts it under a ``root_path``, or a route before it may take its path
        (see :meth:`_gated_routes`).
        """
        if scope["type"] == "http" and not scope.get("root_path"):
            gated = self._gated if self._gated_of == len(self.router.routes) else self._gated_routes()
            route = gated.get((scope["path"], scope["method"]))
            if route is not None:
                scope["app"] = self
                if "router" not in scope:
                    scope["router"] = self.router
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await route.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _gated_routes(self) -> dict[tuple[str, str], Route]:
        """The gated routes at a fixed path, by ``(path, method)``: each where Starlette's
        router would take it (the first route in order that matches the path and the
        method); made again when routes are added.

        Only plain ``Route`` objects are looked through: after a ``Mount``, a ``Host`` or any
        other kind of route, which may match on more than a path, none is taken."""
        routes = self.router.routes
        if self._gated_of == len(routes):
            return self._gated
        gated: dict[tuple[str, str], Route] = {}
        if not self.user_middleware and getattr(self, "max_body_size", None) is None:
            plain: list[Route] = []
            for route in routes:
                if type(route) is not Route:
                    break
                plain.append(route)
            for route in plain:
                if not isinstance(route.app, GatedEndpoint) or route.param_convertors:
                    continue
                for method in route.methods or ():
                    probe = {"type": "http", "path": route.path, "root_path": "", "method": method}
                    first = next((r for r in plain if r.matches(probe)[0] is Match.FULL), None)
                    if first is route:
                        gated[route.path, method] = route
        self._gated, self._gated_of = gated, len(routes)
        return gated

    def add_api_route(self, path: str, endpoint: Callable[..., Any], methods: Sequence[str] | None = None,
                      name: str | None = None, *, include_in_schema: bool = True,
                      predicts: bool | None = None) -> None:
        """Serve ``endpoint`` at ``path`` (see the module docstring for its arguments).

        :param methods: HTTP methods (default ``["GET"]``, as FastAPI).
        :param predicts: whether a request takes a prediction slot and ``predict_timeout``
            applies; default: for methods that carry a body.
        """
        methods = [m.upper() for m in (methods or ["GET"])]
        params = plan(endpoint, path, methods)
        body_route = any(m in BODY_METHODS for m in methods)
        takes_raw = any(p.source in ("request", "admission") for p in params)
        gate = self.gate
        if gate is None:
            raise RuntimeError("the app has no admission gate; build it with up.web.load()")
        endpoint_app = gate.endpoint(
            BoundHandler(endpoint, params),
            accepts=None if takes_raw else JSON_BODIES,
            predicts=body_route if predicts is None else predicts,
            timeout=self.handler_timeout if (body_route if predicts is None else predicts) else None,
            route=path,
        )
        self.router.routes.append(Route(path, endpoint_app, methods=methods, name=name,
                                        include_in_schema=include_in_schema))
        if include_in_schema:
            operation = openapi_operation(endpoint, params, name)
            item = self.api_paths.setdefault(_openapi_path(path), {})
            for method in methods:
                if method != "HEAD":
                    item[method.lower()] = operation

    def api_route(self, path: str, methods: Sequence[str] | None = None, **options: Any) -> Callable[[Any], Any]:
        """``@app.api_route("/x", methods=["POST"])``: :meth:`add_api_route` as a decorator."""

        def decorate(endpoint: Callable[..., Any]) -> Callable[..., Any]:
            self.add_api_route(path, endpoint, methods=methods, **options)
            return endpoint

        return decorate

    def get(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.api_route(path, ["GET"], **options)

    def post(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.api_route(path, ["POST"], **options)

    def put(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.api_route(path, ["PUT"], **options)

    def patch(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.api_route(path, ["PATCH"], **options)

    def delete(self, path: str, **options: Any) -> Callable[[Any], Any]:
        return self.api_route(path, ["DELETE"], **options)


def _openapi_path(path: str) -> str:
    """``/items/{item_id:int}`` -> ``/items/{item_id}``."""
    import re

    return re.sub(r"{([^}:]+):[^}]+}", r"{\1}", path)


__all__ = ["App", "BoundHandler", "Parameter", "Response", "plan"]
