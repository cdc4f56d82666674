"""The SDK's in-memory exporter as the process's tracer provider, and real servers.

Spans are made in the server's process, so the servers run here: ``UP.run_web_app(daemon=True)``
serves the app with hypercorn (``hypercorn.asyncio.serve``) in a thread on 127.0.0.1, and the
tests talk to it with httpx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from core import UP, Config
from core.testing import free_port
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="session", autouse=True)
def provider() -> TracerProvider:
    """The global provider (set once per process, as an application would)."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    return provider


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """``serve(model, plugins=None, **settings)`` serves ``model`` in this process; returns
    its base URL."""
    running: list[UP] = []

    def start(model: Any, plugins: Any = None, **settings: Any) -> str:
        up = UP(ml_model=model,
                conf=Config(host="127.0.0.1", port=free_port(), name="summer", **settings),
                plugins=plugins)
        up.ml.load()
        up.run_web_app(daemon=True, force_load=True)
        running.append(up)
        return f"http://127.0.0.1:{up.conf.port}"

    yield start
    for up in running:
        up.stop_web_app()
