"""core-tracing-opentelemetry: trace core's requests with OpenTelemetry.

Implements core's ``register_tracer`` hook (:mod:`core.tracing`): each request to a prediction
route is a SERVER span named after its route template (``POST /predict``), with child spans for
its phases (``read``, ``validate``, ``queue``, ``predict``, ``respond``). Spans go to the
global ``TracerProvider``: the application's when it configured one (``opentelemetry-instrument``,
or its own code), else one this plugin builds from the standard ``OTEL_*`` environment variables
(:mod:`core_tracing_opentelemetry.provider`). With neither, nothing is traced and core pays
nothing. See the README.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.hookspecs import hookimpl

from core_tracing_opentelemetry.provider import ensure_provider
from core_tracing_opentelemetry.tracer import OpenTelemetryTracer, RequestSpan

if TYPE_CHECKING:
    from core.http import Service

__version__ = "0.1.0"

__all__ = ["OpenTelemetryTracer", "RequestSpan", "__version__", "register_tracer"]


@hookimpl
def register_tracer(service: Service) -> OpenTelemetryTracer | None:
    """An :class:`OpenTelemetryTracer` when spans have somewhere to go, else None."""
    if not ensure_provider(service.name):
        return None
    return OpenTelemetryTracer()
