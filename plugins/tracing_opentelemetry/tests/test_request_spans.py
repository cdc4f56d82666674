"""A SERVER span per request with its phases as children, on real servers (see conftest)."""

from __future__ import annotations

import io
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from core.logs import REQUEST_CONTEXT, JSONFormatter
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode


class Model:
    """Sums each row; logs a line and makes a span of its own, as a real model may."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def predict(self, X):
        logging.getLogger("tests.model").info("predicting %d rows", len(X))
        with trace.get_tracer("tests.model").start_as_current_span("model.inner"):
            if self.delay:
                time.sleep(self.delay)
        return [sum(row) for row in X]


def finished(exporter: InMemorySpanExporter, count: int,
             timeout: float = 10.0) -> list[ReadableSpan]:
    """The spans exported once ``count`` SERVER spans are (a span ends after the answer is
    sent: the client may see the answer first)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = list(exporter.get_finished_spans())
        servers = [span for span in spans if span.kind == SpanKind.SERVER]
        if len(servers) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.01)


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    """``parent``'s child spans, by start time."""
    span_id = parent.context.span_id
    return sorted((span for span in spans
                   if span.parent is not None and span.parent.span_id == span_id),
                  key=lambda span: span.start_time or 0)


ARCHITECTURES = {
    "directly_to_predict": ["read", "validate", "predict", "respond"],
    "worker_and_queue": ["read", "validate", "queue", "predict", "respond"],
    "batching": ["read", "validate", "queue", "predict", "respond"],
}


def server_spans(spans):
    return [span for span in spans if span.kind == SpanKind.SERVER]


@pytest.mark.parametrize("mode", list(ARCHITECTURES))
def test_a_request_is_a_server_span_with_its_phases_in_order(serve, exporter, mode):
    url = serve(Model(), mode=mode)
    answer = httpx.post(f"{url}/predict", json={"X": [[1, 2], [3, 4]]})
    assert answer.status_code == 200, answer.text
    spans = finished(exporter, 1)
    [server] = server_spans(spans)
    assert server.name == "POST /predict"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.route"] == "/predict"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["core.predict_id"] == answer.headers["x-predict-id"]
    assert server.status.status_code == StatusCode.UNSET
    assert server.parent is None  # no traceparent: a new trace
    phases = [span for span in children(spans, server) if span.name != "model.inner"]
    assert [span.name for span in phases] == ARCHITECTURES[mode]
    previous_end = server.start_time
    for span in phases:  # one after the other, inside the request's span
        assert span.context.trace_id == server.context.trace_id
        assert previous_end <= span.start_time <= span.end_time <= server.end_time
        previous_end = span.end_time
    predict = phases[ARCHITECTURES[mode].index("predict")]
    assert predict.attributes["core.architecture"] == mode


def test_the_model_s_own_spans_nest_under_the_request(serve, exporter):
    url = serve(Model())  # directly_to_predict: the pool thread runs in the request's context
    httpx.post(f"{url}/predict", json={"X": [[1, 2]]}).raise_for_status()
    spans = finished(exporter, 1)
    [server] = server_spans(spans)
    [inner] = [span for span in spans if span.name == "model.inner"]
    assert inner.parent is not None and inner.parent.span_id == server.context.span_id


def test_a_clients_traceparent_continues_its_trace(serve, exporter):
    url = serve(Model())
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    httpx.post(f"{url}/predict", json={"X": [[1, 2]]},
               headers={"traceparent": f"00-{trace_id}-{parent_id}-01"}).raise_for_status()
    [server] = server_spans(finished(exporter, 1))
    assert format(server.context.trace_id, "032x") == trace_id
    assert server.parent is not None and format(server.parent.span_id, "016x") == parent_id
    assert server.parent.is_remote


def test_batched_requests_predict_spans_carry_their_batch(serve, exporter):
    url = serve(Model(), mode="batching", max_batch_wait=1000, worker_count=1)
    sizes = [1, 2, 3]
    with ThreadPoolExecutor(len(sizes)) as pool:
        answers = list(pool.map(
            lambda n: httpx.post(f"{url}/predict", json={"X": [[1]] * n}), sizes))
    assert [answer.status_code for answer in answers] == [200] * len(sizes)
    rows_of = {answer.headers["x-predict-id"]: n for answer, n in zip(answers, sizes)}
    spans = finished(exporter, len(sizes))
    servers = server_spans(spans)
    assert len(servers) == len(sizes)
    batches: dict[tuple[int, int], list[ReadableSpan]] = {}  # one model call: one (start, end)
    for server in servers:
        [predict] = [span for span in children(spans, server) if span.name == "predict"]
        predict_id = server.attributes["core.predict_id"]
        batches.setdefault((predict.start_time, predict.end_time), []).append(predict)
        assert predict.attributes["core.architecture"] == "batching"
        rows_of[predict.context.span_id] = rows_of[predict_id]
    for predicts in batches.values():
        for predict in predicts:
            assert predict.attributes["core.batch.requests"] == len(predicts)
            assert predict.attributes["core.batch.rows"] == sum(
                rows_of[span.context.span_id] for span in predicts)
    assert max(len(members) for members in batches.values()) > 1  # requests were merged


@pytest.mark.parametrize(("settings", "request_kwargs", "status"), [
    ({}, {"json": {"Y": [[1]]}}, 422),
    ({"max_body_size": 64}, {"json": {"X": [[1, 2, 3]] * 50}}, 413),
])
def test_a_refused_request_ends_its_span_with_the_status(serve, exporter, settings,
                                                         request_kwargs, status):
    url = serve(Model(), **settings)
    answer = httpx.post(f"{url}/predict", **request_kwargs)
    assert answer.status_code == status, answer.text
    spans = finished(exporter, 1)
    [server] = server_spans(spans)
    assert server.attributes["http.response.status_code"] == status
    assert server.status.status_code == StatusCode.UNSET  # a client's mistake is no server error
    names = [span.name for span in children(spans, server)]
    assert names[0] == "read" and names[-1] == "respond"
    assert "predict" not in names


def test_a_request_refused_429_ends_its_span_too(serve, exporter):
    url = serve(Model(delay=0.5), throttling_max_requests=1)
    answers: list[httpx.Response] = []
    with ThreadPoolExecutor(2) as pool:
        for _ in range(5):  # two at once: the one that comes second is refused
            answers += pool.map(lambda _: httpx.post(f"{url}/predict", json={"X": [[1]]},
                                                     timeout=30), range(2))
            if any(answer.status_code == 429 for answer in answers):
                break
    assert {answer.status_code for answer in answers} == {200, 429}
    spans = finished(exporter, len(answers))
    status_of = {span.attributes["core.predict_id"]: span.attributes["http.response.status_code"]
                 for span in server_spans(spans)}
    assert status_of == {answer.headers["x-predict-id"]: answer.status_code for answer in answers}


def test_a_server_error_marks_the_span_as_an_error(serve, exporter):
    class Broken:
        def predict(self, X):
            raise RuntimeError("the model broke")

    url = serve(Broken())
    answer = httpx.post(f"{url}/predict", json={"X": [[1]]})
    assert answer.status_code >= 500
    [server] = server_spans(finished(exporter, 1))
    assert server.attributes["http.response.status_code"] == answer.status_code
    assert server.status.status_code == StatusCode.ERROR
    assert server.attributes["error.type"] == str(answer.status_code)


def test_log_lines_of_a_request_carry_its_trace_id(serve, exporter):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(REQUEST_CONTEXT)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    model_logger, access = logging.getLogger("tests.model"), logging.getLogger("core.access")
    levels = model_logger.level, access.level
    root.addHandler(handler)
    model_logger.setLevel(logging.INFO)
    access.setLevel(logging.INFO)
    try:
        url = serve(Model(), access_log=True)
        answer = httpx.post(f"{url}/predict", json={"X": [[1, 2]]})
        assert answer.status_code == 200
        [server] = server_spans(finished(exporter, 1))
    finally:
        root.removeHandler(handler)
        model_logger.setLevel(levels[0])
        access.setLevel(levels[1])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    trace_id = format(server.context.trace_id, "032x")
    [model_line] = [line for line in lines if line["message"] == "predicting 1 rows"]
    assert model_line["trace_id"] == trace_id  # the model's own logging call, in a pool thread
    assert model_line["predict_id"] == answer.headers["x-predict-id"]
    [access_line] = [line for line in lines if line["logger"] == "core.access"]
    assert access_line["trace_id"] == trace_id
    outside = [line for line in lines if "predict_id" not in line]
    assert all("trace_id" not in line for line in outside)  # only a request's lines have one
