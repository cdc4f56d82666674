"""core's tracing surface (:mod:`core.tracing`) with a tracer written here: the phases the gate
and the architectures record, the status it ends with, one tracer at most, and the trace id on
log lines. (The OpenTelemetry plugin's own tests check its spans.)"""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx
import pytest

from core import UP, Config
from core.errors import ConfigError
from core.hookspecs import hookimpl
from core.logs import JSONFormatter, TextFormatter
from core.plugins import load_plugins
from core.testing import free_port
from core.tracing import TRACE, RequestTrace, Tracer


class Recorded:
    """A :class:`core.tracing.RequestTrace` that keeps what it is told."""

    def __init__(self, method: str, route: str, predict_id: str, start_ns: int) -> None:
        self.trace_id = f"{len(predict_id):032x}"
        self.method, self.route, self.predict_id, self.start_ns = method, route, predict_id, start_ns
        self.phases: list[tuple[str, int, int, Any]] = []
        self.ended: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def phase(self, name: str, start_ns: int, end_ns: int, attributes: Any = None) -> None:
        with self._lock:
            self.phases.append((name, start_ns, end_ns, dict(attributes or {})))

    def end(self, status: int, end_ns: int) -> None:
        self.ended = (status, end_ns)


class Recorder:
    """A tracer plugin: ``register_tracer`` returns itself."""

    def __init__(self) -> None:
        self.traces: list[Recorded] = []
        self.current: list[RequestTrace | None] = []

    def start(self, method: str, route: str, predict_id: str, headers: Any, start_ns: int) -> Recorded:
        trace = Recorded(method, route, predict_id, start_ns)
        self.traces.append(trace)
        return trace

    @hookimpl
    def register_tracer(self, service: Any) -> Tracer:
        return self


class Model:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def predict(self, X):
        self.recorder.current.append(TRACE.get())  # in the pool thread: the request's trace
        return X


#: The model the test serves now, handed over by ``components.ObjectStorage`` (the core's
#: tests run with no storage plugin).
SERVED_MODEL: Any = None


def serving(model: Any, **settings: Any) -> Config:
    global SERVED_MODEL
    SERVED_MODEL = model
    return Config(host="127.0.0.1", port=free_port(), storage_type="components.ObjectStorage",
                  storage_kwargs={"spec": f"{__name__}:SERVED_MODEL"}, **settings)


@pytest.mark.parametrize(("mode", "phases"), [
    ("directly_to_predict", ["read", "validate", "predict", "respond"]),
    ("worker_and_queue", ["read", "validate", "queue", "predict", "respond"]),
])
def test_the_gate_and_the_architecture_record_the_phases(mode, phases):
    recorder = Recorder()
    up = UP(conf=serving(Model(recorder), mode=mode), plugins=load_plugins([recorder], entry_points=False))
    up.run_web_app(daemon=True)
    try:
        answer = httpx.post(f"http://127.0.0.1:{up.conf.port}/predict", json={"X": [[1]]})
        refused = httpx.post(f"http://127.0.0.1:{up.conf.port}/predict", content=b"{nope")
    finally:
        up.stop_web_app()
    assert answer.status_code == 200 and refused.status_code in (400, 422)
    traced, bad = recorder.traces
    assert (traced.method, traced.route, traced.predict_id) == ("POST", "/predict", answer.headers["x-predict-id"])
    assert [name for name, *_ in traced.phases] == phases
    ends = [traced.start_ns]
    for _, start, end, _attributes in traced.phases:
        assert ends[-1] <= start <= end
        ends.append(end)
    assert traced.ended is not None and traced.ended[0] == 200 and traced.ended[1] >= ends[-1]
    assert traced.phases[phases.index("predict")][3] == {"core.architecture": mode}
    if mode == "directly_to_predict":  # the pool thread runs in a copy of the request's context
        assert recorder.current == [traced]
    assert bad.ended is not None and bad.ended[0] == refused.status_code
    assert "predict" not in [name for name, *_ in bad.phases]
    assert TRACE.get() is None


def test_two_tracers_are_one_readable_error_naming_both():
    first, second = Recorder(), Recorder()
    up = UP(conf=serving(Model(first)), plugins=load_plugins([first, second], entry_points=False))
    up.ml.load()
    with pytest.raises(ConfigError) as raised:
        up.web.load()
    message = str(raised.value)
    assert "\n" not in message and "more than one plugin traces requests" in message
    plugins = up.plugins.pm
    for recorder in (first, second):
        assert f"plugin {plugins.get_name(recorder)!r}" in message


def test_log_formats_show_the_trace_id():
    record = logging.LogRecord("core", logging.INFO, __file__, 1, "hello", None, None)
    record.predict_id, record.trace_id = "abc", "0af7651916cd43dd8448eb211c80319c"
    assert "[abc trace=0af7651916cd43dd8448eb211c80319c] hello" in TextFormatter().format(record)
    assert '"trace_id":"0af7651916cd43dd8448eb211c80319c"' in JSONFormatter().format(record)
    plain = logging.LogRecord("core", logging.INFO, __file__, 1, "hello", None, None)
    plain.predict_id, plain.trace_id = "abc", None
    assert "[abc] hello" in TextFormatter().format(plain)
    assert "trace_id" not in JSONFormatter().format(plain)
