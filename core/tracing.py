"""Tracing: what a tracing plugin implements, and where core records a request's phases.

core traces nothing by itself: a plugin implementing the ``register_tracer`` hook (see
:mod:`core.hookspecs`; ``core-tracing-opentelemetry`` is one) returns a :class:`Tracer`, and
then, for each request to a route behind the admission gate (:mod:`core.http.gate`):

1. the gate calls :meth:`Tracer.start` when the request arrives, before its body is read, and
   sets :data:`TRACE` to the :class:`RequestTrace` it returns for as long as the request is
   handled;
2. the request's phases are recorded as they finish, each as one
   :meth:`RequestTrace.phase` call with its start and end:

   ============ ================================================= ========================
   phase        from -> to                                        recorded by
   ============ ================================================= ========================
   ``read``     the request arrived -> its body is read            the gate
   ``validate`` the body is read -> the architecture is called    the gate (``Admission.predict``)
   ``queue``    the request was queued -> its model call started  ``worker_and_queue``, ``batching``
   ``predict``  the model call (transforms included)              every architecture
   ``respond``  writing the answer                                the gate
   ============ ================================================= ========================

   ``predict`` has the attributes ``core.architecture`` (the ``mode``) and, in ``batching``,
   ``core.batch.requests`` and ``core.batch.rows`` (the batch the call ran);
3. the gate calls :meth:`RequestTrace.end` with the status it answered, errors included
   (4xx, 429, 5xx, 504, ``499`` for a client that left).

Every line logged while a traced request is handled carries its trace id (``trace_id``, see
:mod:`core.logs`): the gate sets :data:`core.logs.TRACE_ID` with :data:`TRACE`.

**Cost.** Without a tracer the gate and the architectures test one attribute (or
:data:`TRACE`) and do nothing else: no clock read, no allocation. With one, each phase is
two clock reads and a call into the plugin.

Times are epoch nanoseconds (:func:`time.time_ns`), what OpenTelemetry takes for a span's
explicit start and end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Protocol, runtime_checkable

#: Attribute values a phase may carry (OpenTelemetry's attribute types).
AttributeValue = str | bool | int | float

#: The phases core records, in the order they happen.
PHASES = ("read", "validate", "queue", "predict", "respond")


@runtime_checkable
class RequestTrace(Protocol):
    """The trace of one request, returned by :meth:`Tracer.start`."""

    #: The trace id as 32 lowercase hex digits: what log lines carry as ``trace_id``.
    trace_id: str

    def phase(self, name: str, start_ns: int, end_ns: int,
              attributes: Mapping[str, AttributeValue] | None = None) -> None:
        """Record one finished phase of the request (a child span), ``name`` one of
        :data:`PHASES`. Called from the event loop and from worker threads (``queue`` and
        ``predict`` in the queued architectures), so it must be thread-safe; it may be
        called after :meth:`end` (a long prediction, ``is_long_predict``, runs after its
        request was answered 202) and must not raise."""
        ...

    def end(self, status: int, end_ns: int) -> None:
        """The request was answered ``status`` (or its client left: ``499``). Called once,
        on the event loop, in the request's task (the one :meth:`Tracer.start` was called in)."""
        ...


@runtime_checkable
class Tracer(Protocol):
    """What ``register_tracer`` returns: starts the trace of each request."""

    def start(self, method: str, route: str, predict_id: str,
              headers: Sequence[tuple[bytes, bytes]], start_ns: int) -> RequestTrace:
        """Begin the trace of a request: called on the event loop, in the request's task,
        when it arrives.

        :param method: the HTTP method (``POST``).
        :param route: the route's path template (``/predict``, ``/v2/models/{name}/infer``),
            never the raw path.
        :param predict_id: the request's predict id (``X-Predict-Id``).
        :param headers: the request's raw ASGI headers (lowercase names), for the W3C
            ``traceparent`` and ``tracestate`` a client sends to continue its trace.
        :param start_ns: when the request arrived (epoch nanoseconds).
        """
        ...


#: The trace of the request being handled: None outside a request, or without a tracer.
#: Set by the gate in the request's task; the queued architectures carry it to the worker
#: that runs the request (``Job.trace``).
TRACE: ContextVar[RequestTrace | None] = ContextVar("core_trace", default=None)
