"""Every error ``core`` raises on purpose.

Two families:

* :class:`CoreError` subclasses that are not :class:`RequestError` are user mistakes in
  config, plugins or model files. They print as one line (CLI and server start-up) that names
  what to fix.
* :class:`RequestError` subclasses carry an HTTP status and a list of details; the web app
  maps them to a JSON body in one place (:mod:`core.web`).
"""

from __future__ import annotations

from typing import Any


class CoreError(Exception):
    """Base class: a mistake the user can fix, with a message that says how."""


class ConfigError(CoreError):
    """The config is wrong: an unknown key, a wrong type, an unknown plugin name..."""


class PluginError(CoreError):
    """A plugin could not be loaded, or two plugins claim one name."""


class ModelLoadError(CoreError):
    """The model's files could not be found, read or deserialised."""


class WebAppLoadError(CoreError):
    """The web app was used before it was built, or could not start."""


class ModelAnalysisError(CoreError):
    """The model has no usable predict method, or its signature cannot be served."""


class RequestError(CoreError):
    """An error answered over HTTP with ``{"detail": [...], "predict_id": ...}``."""

    status_code = 400
    type = "bad_request"
    #: Why the request was refused without running the model (``core_rejected_total``'s
    #: ``reason``: the setting that refused it), or None for any other error.
    reason: str | None = None

    def __init__(
        self,
        msg: str,
        *,
        loc: list[str | int] | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(msg)
        self.msg = msg
        self.headers = headers or {}
        self.details = details or [{"loc": loc or [], "msg": msg, "type": self.type}]

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other arguments: rebuild from the state, not from __init__'s.
        return _rebuild, (type(self), self.__dict__)


class InvalidRequestBody(RequestError):
    """The body is not JSON, or not a JSON object."""

    status_code = 400
    type = "invalid_body"


class ValidationError(RequestError):
    """The body is JSON but does not match the model's request schema."""

    status_code = 422
    type = "validation_error"

    def __init__(self, details: list[dict[str, Any]]) -> None:
        summary = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in details[:3])
        super().__init__(summary, details=details)


class BodyTooLarge(RequestError):
    status_code = 413
    type = "body_too_large"
    reason = "max_body_size"


class TooManyRequests(RequestError):
    status_code = 429
    type = "too_many_requests"
    reason = "throttling_max_requests"


class QueueFull(TooManyRequests):
    """The architecture's queue is full (``max_queue_size``): 429 with ``Retry-After``."""

    type = "queue_full"
    reason = "max_queue_size"


class NotFound(RequestError):
    status_code = 404
    type = "not_found"


class RequestTimeout(RequestError):
    status_code = 408
    type = "timeout"
    reason = "body_timeout"


class PredictTimeout(RequestError):
    status_code = 504
    type = "predict_timeout"


class ServiceUnavailable(RequestError):
    status_code = 503
    type = "unavailable"
    reason = "shutting_down"


class PredictTransformDataError(RequestError):
    """The transformer could not convert request data into the model's format."""

    status_code = 422
    type = "transform_error"


class PredictError(RequestError):
    """The model raised while predicting. Answered 500 with the model's message."""

    status_code = 500
    type = "predict_error"


class PredictedTransformDataError(RequestError):
    """The model's result could not be turned into JSON."""

    status_code = 500
    type = "transform_error"


class InternalError(RequestError):
    """A bug in core or a plugin while serving; still answered as JSON."""

    status_code = 500
    type = "internal_error"


def _rebuild(cls: type[RequestError], state: dict[str, Any]) -> RequestError:
    """Unpickle a RequestError (see :meth:`RequestError.__reduce__`)."""
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("msg", ""))
    error.__dict__.update(state)
    return error
