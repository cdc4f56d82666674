"""JSON out: serialising results, and writing errors in a route's error format.

Every :class:`core.errors.RequestError` raised while a route runs becomes a response here, in
one place: :class:`ErrorFormat` turns it into a status, headers and a JSON body. core's own
format, :data:`CORE_ERRORS`, is ``{"detail": [{"loc", "msg", "type"}], "predict_id": ...}``
with the error's status; a protocol with its own error shape (the V2 protocol's
``{"error": "..."}``) gives its routes another :class:`ErrorFormat`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.responses import Response

from core.errors import PredictedTransformDataError, RequestError
from core.transformers import to_jsonable

PREDICT_ID_HEADER = "X-Predict-Id"
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
JSON_TYPE = b"application/json"


def _default(value: Any) -> Any:
    converted = to_jsonable(value)
    if converted is value:
        return str(value)
    return converted


def dumps(data: Any) -> bytes:
    """Serialise with orjson; numpy arrays natively, anything odd through ``to_jsonable``.

    :raises PredictedTransformDataError: (500, no traceback) for what JSON cannot carry: an
        integer past 64 bits, or nesting deeper than orjson's 254 levels (a model that echoes
        a deeply nested request).
    """
    try:
        return orjson.dumps(data, default=_default, option=JSON_OPTIONS)
    except orjson.JSONEncodeError as error:
        raise PredictedTransformDataError(f"could not turn the result into JSON: {error}") from None


class JSONResponse(Response):
    """A Starlette response whose content is serialised by :func:`dumps`."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


class HTTPError(RequestError):
    """A Starlette ``HTTPException`` raised in a route's handler (the way Starlette and FastAPI
    users refuse a request), as a :class:`RequestError` of its status, detail and headers."""

    type = "http_error"

    def __init__(self, error: HTTPException) -> None:
        super().__init__(str(error.detail), headers=dict(error.headers or {}))
        self.status_code = error.status_code


class ErrorFormat:
    """How a route writes an error: ``render(error, predict_id) -> (status, body)``.

    :param body: builds the JSON body from the error and the predict id.
    :param status: the status to send for an error (default: the error's own).
    """

    def __init__(self, body: Callable[[RequestError, str | None], Any],
                 status: Callable[[RequestError], int] | None = None) -> None:
        self._body = body
        self._status = status

    def render(self, error: RequestError, predict_id: str | None) -> tuple[int, bytes]:
        status = error.status_code if self._status is None else self._status(error)
        return status, dumps(self._body(error, predict_id))

    def response(self, error: RequestError, predict_id: str | None = None) -> Response:
        """The error as a Starlette response, with its headers and the predict id."""
        status, body = self.render(error, predict_id)
        headers = dict(error.headers)
        if predict_id is not None:
            headers[PREDICT_ID_HEADER] = predict_id
        return Response(body, status_code=status, headers=headers, media_type="application/json")


def _core_body(error: RequestError, predict_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": error.details}
    if predict_id is not None:
        body["predict_id"] = predict_id
    return body


#: core's error format: ``{"detail": [...], "predict_id": ...}`` with the error's status.
CORE_ERRORS = ErrorFormat(_core_body)


def error_response(error: RequestError, predict_id: str | None = None) -> Response:
    """A RequestError in core's format, as a Starlette response."""
    return CORE_ERRORS.response(error, predict_id)
