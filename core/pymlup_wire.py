"""pymlup's wire format, for clients that cannot change: ``pymlup_wire_format = true``.

Off by default: core's answers differ from pymlup's where core is deliberately better (the
README's migration table says where and why). A client written against pymlup that cannot be
changed gets, with the setting on, what pymlup answered (nxexox/pymlup, ``mlup/web/app.py``,
``mlup/web/api_errors.py``, the architectures):

* ``GET /health`` (and ``HEAD``, ``OPTIONS``): ``{"status": 200}``;
* ``GET /info``: ``{"model_info": {"name", "version", "type", "columns"}, "web_app_info":
  {"version"}}`` (with ``debug``, the config's ``ml`` and ``web`` sections as
  ``model_config`` and ``web_app_config``);
* errors: ``{"detail": [{"loc", "msg", "type"}], "predict_id"}`` with ``loc`` without core's
  leading ``"body"`` and pydantic v1's type names (``value_error.missing``); invalid JSON is a
  422 (``validation_error``), a full queue a 500 (``predict_error``, "Queue is full. Please
  try later."), throttling pymlup's 429 message (``throttling_error``);
* long predictions (``is_long_predict``): ``POST /predict`` answers 200
  ``{"predict_result": {"predict_id": ...}}``; ``GET /get-predict/{id}`` answers the bare
  result, and an id that is unknown or not ready after ``ttl_client_wait`` a 408
  (``predict_wait_result_error``, "Response timed out. Repeat request please.");
* a single-input ONNX model takes its rows as ``input_data`` (pymlup's ``predict(input_data)``,
  :func:`core.pymlup.input_aliases`) and answers its outputs as a list; with pymlup's
  ``mlup.ml.binarization.onnx.InferenceSessionBinarizer`` named in ``binarization_type``, the
  last output is dropped, as that binarizer did (its ``FullReturn`` variant keeps all).

pymlup compatibility is gathered in two modules so that it is easy to see and to retire:
:mod:`core.pymlup` (config keys, names, shapes; low in the layers) and this one (the HTTP
answers, above :mod:`core.http`).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from core.errors import InvalidRequestBody, NotFound, QueueFull, RequestError, RequestTimeout, TooManyRequests
from core.http import ErrorFormat

if TYPE_CHECKING:
    from core.analysis import ModelInterface
    from core.config import Config

#: pymlup's ``InferenceSessionBinarizer`` answered every output but the last.
DROPS_LAST_OUTPUT = "mlup.ml.binarization.onnx.InferenceSessionBinarizer"

#: core's error types as pymlup's (pydantic v1) named them.
_TYPES = {
    "missing": "value_error.missing",
    "extra_forbidden": "value_error.extra",
    "type_error": "type_error",
    "predict_error": "predict_error",
    "transform_error": "predict_transform_data_error",
    "predict_timeout": "predict_error",
}


def _status(error: RequestError) -> int:
    if isinstance(error, QueueFull):
        return 500
    if isinstance(error, InvalidRequestBody):
        return 422
    return error.status_code


def _body(error: RequestError, predict_id: str | None) -> dict[str, Any]:
    if isinstance(error, QueueFull):
        details = [{"loc": [], "msg": "Queue is full. Please try later.", "type": "predict_error"}]
    elif isinstance(error, RequestTimeout) and error.type == "predict_wait_result_error":
        details = error.details
    elif isinstance(error, TooManyRequests) and "throttling_max_requests" in error.msg:
        details = [{"loc": [], "msg": "Max requests in app. Please try again later.",
                    "type": "throttling_error"}]
    elif isinstance(error, InvalidRequestBody) and error.msg.startswith("invalid JSON"):
        details = [{"loc": [], "msg": f"Invalid json data: {error.msg}", "type": "validation_error"}]
    else:
        details = [{"loc": _loc(detail.get("loc", [])), "msg": detail.get("msg", ""),
                    "type": _TYPES.get(detail.get("type", ""), detail.get("type", ""))}
                   for detail in error.details]
    body: dict[str, Any] = {"detail": details}
    if predict_id is not None:
        body["predict_id"] = predict_id
    return body


def _loc(loc: list[Any]) -> list[Any]:
    return list(loc[1:]) if loc[:1] == ["body"] else list(loc)


#: pymlup's error format, for every route of core's when the setting is on.
PYMLUP_ERRORS = ErrorFormat(_body, status=_status)

HEALTH = {"status": 200}


def info(conf: Config, interface: ModelInterface | None, model: Any) -> dict[str, Any]:
    """``GET /info`` as pymlup answered it."""
    answer: dict[str, Any] = {
        "model_info": {"name": conf.name, "version": conf.version,
                       "type": type(model).__name__ if model is not None else None,
                       "columns": conf.columns},
        "web_app_info": {"version": conf.version},
    }
    if conf.debug:
        shape = conf.to_dict()
        answer["model_config"] = shape.get("ml", {})
        answer["web_app_config"] = shape.get("web", {})
    return answer


def deferred(predict_id: str) -> dict[str, Any]:
    """A long prediction's first answer: 200 with the id inside ``predict_result``."""
    return {"predict_result": {"predict_id": predict_id}}


def not_ready(predict_id: str) -> RequestTimeout:
    error = RequestTimeout("Response timed out. Repeat request please.", headers={})
    error.details = [{"loc": [], "msg": error.msg, "type": "predict_wait_result_error"}]
    error.type = "predict_wait_result_error"
    return error


async def wait_for_result(fetch: Any, predict_id: str, ttl_client_wait: float) -> Any:
    """pymlup's ``GET /get-predict/{id}``: poll every 0.1 s until the result is there or
    ``ttl_client_wait`` has passed (an unknown id waits too), then 408."""
    deadline = time.monotonic() + ttl_client_wait
    while True:
        try:
            return await fetch(predict_id)
        except (NotFound, RequestTimeout):
            if time.monotonic() >= deadline:
                raise not_ready(predict_id) from None
        await asyncio.sleep(0.1)


def outputs(result: Any, conf: Config, interface: ModelInterface) -> Any:
    """A model's declared outputs (a dict by name: ONNX) as pymlup's list of outputs."""
    if interface.outputs is None or not isinstance(result, dict):
        return result
    values = list(result.values())
    if conf.binarization_type == DROPS_LAST_OUTPUT and len(values) > 1:
        values = values[:-1]
    return values
