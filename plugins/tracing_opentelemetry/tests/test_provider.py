"""Where spans go when the application set no TracerProvider: the ``OTEL_*`` variables.

Each case runs in a fresh process (the global provider can be set once per process): it
builds and serves a model with core, sends one request, and reports what it saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

import httpx
import pytest
from core.plugins import load_plugins

SCRIPT = r"""
import json, sys
import httpx
from core import UP, Config
from core.errors import CoreError
from core.testing import free_port
from opentelemetry import trace

class Model:
    def predict(self, X):
        return X

up = UP(ml_model=Model(), conf=Config(host="127.0.0.1", port=free_port(), name="summer"))
up.ml.load()
try:
    up.web.load()
except CoreError as error:
    print(json.dumps({"error": str(error)}))
    sys.exit(0)
report = {"traced": up.web.gate.tracer is not None}
if report["traced"]:
    up.run_web_app(daemon=True)
    try:
        httpx.post(f"http://127.0.0.1:{up.conf.port}/predict", json={"X": [[1]]}).raise_for_status()
    finally:
        up.stop_web_app()
    provider = trace.get_tracer_provider()
    report["service"] = provider.resource.attributes["service.name"]
    provider.force_flush()
print(json.dumps(report))
"""


def run(**env: str) -> tuple[dict, str]:
    """The script's report and everything it wrote on stdout before it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env={**clean, **env},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    *before, last = done.stdout.strip().splitlines()
    return json.loads(last), "\n".join(before)


def test_no_provider_and_no_exporter_traces_nothing():
    report, _ = run()
    assert report == {"traced": False}  # the gate does no tracing work


def test_the_sdk_can_be_turned_off():
    report, _ = run(OTEL_TRACES_EXPORTER="console", OTEL_SDK_DISABLED="true")
    assert report == {"traced": False}


def test_console_exporter_writes_the_request_span_named_after_the_model():
    report, written = run(OTEL_TRACES_EXPORTER="console")
    assert report == {"traced": True, "service": "summer"}
    assert '"name": "POST /predict"' in written
    assert '"name": "predict"' in written


def test_otel_service_name_wins_over_the_model_name():
    report, _ = run(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="pricing")
    assert report == {"traced": True, "service": "pricing"}


def test_an_unknown_exporter_is_one_readable_line():
    report, _ = run(OTEL_TRACES_EXPORTER="pigeon")
    message = report["error"]
    assert "\n" not in message
    assert "OTEL_TRACES_EXPORTER names 'pigeon'" in message


def test_an_unknown_otlp_protocol_is_one_readable_line():
    report, _ = run(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="carrier")
    assert "\n" not in report["error"]
    assert "OTEL_EXPORTER_OTLP_PROTOCOL = 'carrier'" in report["error"]
    assert "grpc" in report["error"]


def test_otlp_without_its_exporter_says_what_to_install():
    if list(entry_points(group="opentelemetry_traces_exporter", name="otlp_proto_http")):
        pytest.skip("opentelemetry-exporter-otlp-proto-http is installed here")
    report, _ = run(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    assert "\n" not in report["error"]
    assert "pip install opentelemetry-exporter-otlp" in report["error"]


def test_core_plugins_lists_it():
    done = subprocess.run([sys.executable, "-m", "core", "plugins"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines()
              if line.startswith("tracing_opentelemetry ")]
    assert "core-tracing-opentelemetry" in line and "register_tracer" in line


def test_not_loaded_core_serves_untraced(serve, exporter):
    class Model:
        def predict(self, X):
            return X

    url = serve(Model(), plugins=load_plugins(only="memory"))  # every plugin but this one
    answer = httpx.post(f"{url}/predict", json={"X": [[1]]})
    assert answer.status_code == 200
    assert answer.json() == {"predict_result": [[1]]}
    assert list(exporter.get_finished_spans()) == []
