"""The :class:`core.tracing.Tracer` on the OpenTelemetry API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

#: The instrumentation scope the spans are made under.
SCOPE = "core_tracing_opentelemetry"


class RequestSpan:
    """One request's SERVER span (:class:`core.tracing.RequestTrace`). While the request is
    handled it is the current span of the request's task, so spans the model makes with the
    OpenTelemetry API, where the request's context reaches, are its children."""

    __slots__ = ("_context", "_recording", "_token", "_tracer", "span", "trace_id")

    def __init__(self, tracer: trace.Tracer, span: trace.Span) -> None:
        self._tracer = tracer
        self.span = span
        self._recording = span.is_recording()  # False: sampled out, so are its children
        self.trace_id = format(span.get_span_context().trace_id, "032x")
        self._context = trace.set_span_in_context(span)
        self._token: Any = context.attach(self._context)

    def phase(self, name: str, start_ns: int, end_ns: int,
              attributes: Mapping[str, Any] | None = None) -> None:
        """A child span ``name`` from ``start_ns`` to ``end_ns`` (thread-safe)."""
        if not self._recording:
            return
        self._tracer.start_span(name, self._context, start_time=start_ns,
                                attributes=attributes).end(end_time=end_ns)

    def end(self, status: int, end_ns: int) -> None:
        """End the span with the HTTP status answered (an error for 5xx)."""
        span = self.span
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end_ns)
        if self._token is not None:
            context.detach(self._token)
            self._token = None


class OpenTelemetryTracer:
    """Starts a :class:`RequestSpan` per request (:class:`core.tracing.Tracer`): named
    ``<method> <route template>``, a child of the client's trace when the request carries one
    (``traceparent``, or whatever ``OTEL_PROPAGATORS`` names), else of the current span (an
    ASGI instrumentation's), else a new trace."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        from core_tracing_opentelemetry import __version__

        self._tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)

    def start(self, method: str, route: str, predict_id: str,
              headers: Sequence[tuple[bytes, bytes]], start_ns: int) -> RequestSpan:
        fields = propagate.get_global_textmap().fields
        carrier = {}
        for name, value in headers:
            key = name.decode("latin-1")
            if key in fields:
                carrier[key] = value.decode("latin-1")
        parent = propagate.extract(carrier) if carrier else None
        span = self._tracer.start_span(
            f"{method} {route}", parent, kind=SpanKind.SERVER, start_time=start_ns,
            attributes={"http.request.method": method, "http.route": route,
                        "core.predict_id": predict_id},
        )
        return RequestSpan(self._tracer, span)
