"""The HTTP edge: how requests reach the model, in one place.

Every route that runs a model, core's and a plugin's, is mounted behind the admission gate
(:class:`Gate`), which owns predict ids, body limits and timeouts, the content type,
throttling, ``predict_timeout``, refusal during shutdown and the mapping of every error to a
response. Plugins get a :class:`Service` in their route hooks; that, the gate, the
:class:`Admission` a handler receives, the error types of :mod:`core.errors` and
:class:`ErrorFormat` are the documented surface (docs/plugins.md).
"""

from core.http.body import UnsupportedMediaType, parse_json
from core.http.gate import JSON_BODIES, Admission, Gate, Limits
from core.http.ids import new_predict_id
from core.http.responses import (
    CORE_ERRORS,
    PREDICT_ID_HEADER,
    ErrorFormat,
    JSONResponse,
    dumps,
    error_response,
)
from core.http.routing import App
from core.http.service import Probe, Service

__all__ = [
    "CORE_ERRORS",
    "JSON_BODIES",
    "PREDICT_ID_HEADER",
    "Admission",
    "App",
    "ErrorFormat",
    "Gate",
    "JSONResponse",
    "Limits",
    "Probe",
    "Service",
    "UnsupportedMediaType",
    "dumps",
    "error_response",
    "new_predict_id",
    "parse_json",
]
