"""Where spans go: the application's ``TracerProvider``, or one built from ``OTEL_*``.

When the application set a global ``TracerProvider`` (``opentelemetry-instrument``, or its own
code), it is used as it is. Otherwise, with ``OTEL_TRACES_EXPORTER`` set (and
``OTEL_SDK_DISABLED`` not ``true``), :func:`ensure_provider` sets an SDK ``TracerProvider`` as the
global one, once per process:

* its resource comes from ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME``, the served
  model's name (``name`` in the config) being the service name when neither gives one;
* each exporter ``OTEL_TRACES_EXPORTER`` names (comma-separated) is found by its entry point in
  the ``opentelemetry_traces_exporter`` group, as ``opentelemetry-instrument`` finds it:
  ``console`` comes with the SDK, ``otlp`` (grpc, or ``http/protobuf`` by
  ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL``) with
  ``opentelemetry-exporter-otlp``; each exports through a ``BatchSpanProcessor``
  (``OTEL_BSP_*``);
* the sampler is the SDK's from ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``, the
  exporters read their own variables (``OTEL_EXPORTER_OTLP_ENDPOINT``...).

With no provider and no ``OTEL_TRACES_EXPORTER``, nothing is traced (the API's spans would go
nowhere): core then does no tracing work at all.
"""

from __future__ import annotations

import os
import threading
from importlib.metadata import entry_points

from core.errors import ConfigError
from opentelemetry import trace

#: The entry-point group OpenTelemetry's span exporters register in.
EXPORTERS_GROUP = "opentelemetry_traces_exporter"
#: OTLP's exporter entry points by ``OTEL_EXPORTER_OTLP_PROTOCOL``.
OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}

_lock = threading.Lock()


def ensure_provider(service_name: str) -> bool:
    """Whether spans have somewhere to go: the application's provider, or one set up now
    from the environment (see the module docstring). Raises :class:`ConfigError` for an
    exporter that cannot be had."""
    with _lock:
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return True  # the application's, or the one set up here before
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return False
        names = [name.strip() for name in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")
                 if name.strip() and name.strip().lower() != "none"]
        if not names:
            return False
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporters = [_exporter(name) for name in names]
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: service_name}))
        provider = TracerProvider(resource=resource)
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter()))
        trace.set_tracer_provider(provider)
        return True


def _exporter(name: str) -> type:
    """The span exporter class ``OTEL_TRACES_EXPORTER``'s ``name`` stands for."""
    entry = name
    if name == "otlp":
        protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc").strip()
        if protocol not in OTLP_BY_PROTOCOL:
            raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL = {protocol!r} is not one the OTLP "
                              f"exporter speaks; use one of {', '.join(OTLP_BY_PROTOCOL)}")
        entry = OTLP_BY_PROTOCOL[protocol]
    found = list(entry_points(group=EXPORTERS_GROUP, name=entry))
    if not found:
        hint = ("pip install opentelemetry-exporter-otlp (or core-tracing-opentelemetry[otlp])"
                if name.startswith("otlp") else
                f"install the package of the {name!r} span exporter")
        raise ConfigError(f"OTEL_TRACES_EXPORTER names {name!r}, but no installed package "
                          f"provides it: {hint}; 'console' needs nothing more")
    try:
        return found[0].load()
    except ImportError as error:
        raise ConfigError(f"the {name!r} span exporter (OTEL_TRACES_EXPORTER) cannot be "
                          f"imported: {error}") from None
