"""``/metrics``: real servers answer requests of every kind, then their scrape (parsed with
prometheus_client's own parser) counts exactly what was sent, across worker processes too."""

from __future__ import annotations

import gc
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults import config as object_config
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from serving import object_config as logging_config_of
from test_plugins import install_plugin

from core.config import Config
from core.metrics import DURATION_BUCKETS, Metrics, Observations
from core.testing import Server, free_port

SUPPORT = Path(__file__).parent / "support"
SERVE = [sys.executable, "-m", "core", "serve", "--host", "127.0.0.1", "--port", "{port}"]
DEADLINE = 60.0


def logging_config(**extra: Any) -> dict[str, Any]:
    return logging_config_of("observed:logging_model", **extra)


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of ``url``'s ``/metrics``: (name, labels, value)."""
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return [(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(response.text) for sample in family.samples]


def total(samples: list[tuple[str, dict[str, str], float]], metric: str, /, **labels: str) -> float:
    """The sum of the samples named ``metric`` whose labels include ``labels``."""
    return sum(value for sample, sample_labels, value in samples
               if sample == metric and all(sample_labels.get(k) == v for k, v in labels.items()))


def wait_for(condition: Any, server: Server, what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen; the server's log:\n{server.log()}")


def test_every_kind_of_answer_is_counted_once(serve, tmp_path):
    server = serve(logging_config(max_body_size=2048, throttling_max_requests=1,
                                  throttling_max_request_len=5))
    predict = f"{server.url}/predict"
    for rows in (1, 2, 3):
        assert httpx.post(predict, json={"X": [[1.0]] * rows}).status_code == 200
    for body in ({"Y": 1}, {"X": [[1.0]], "unknown": 2}):
        assert httpx.post(predict, json=body).status_code == 422
    assert httpx.post(predict, json={"X": [[1.0]] * 1000}).status_code == 413
    assert httpx.post(predict, json={"X": [[1.0]] * 6}).status_code == 429  # rows over the limit
    # a prediction holds the only slot until the file exists: the next request is refused
    release = tmp_path / "release"
    held: list[int] = []
    holder = threading.Thread(target=lambda: held.append(
        httpx.post(predict, json={"X": [[1.0]], "wait_for": str(release)}, timeout=DEADLINE).status_code))
    holder.start()
    wait_for(lambda: total(scrape(server.url), "core_in_flight") == 1, server, "the held prediction")
    refused = httpx.post(predict, json={"X": [[1.0]]})
    assert refused.status_code == 429 and "throttling_max_requests" in refused.text
    release.touch()
    holder.join(DEADLINE)
    assert held == [200]
    assert httpx.get(f"{server.url}/health").status_code == 200  # not a model route: not counted

    samples = scrape(server.url)
    route = {"route": "/predict", "method": "POST"}
    assert total(samples, "core_requests_total", **route, status="200") == 4
    assert total(samples, "core_requests_total", **route, status="422") == 2
    assert total(samples, "core_requests_total", **route, status="413") == 1
    assert total(samples, "core_requests_total", **route, status="429") == 2
    assert total(samples, "core_requests_total") == 9
    assert total(samples, "core_request_duration_seconds_count", route="/predict") == 9
    assert total(samples, "core_request_duration_seconds_bucket", route="/predict", le="+Inf") == 9
    assert total(samples, "core_rejected_total", reason="max_body_size") == 1
    assert total(samples, "core_rejected_total", reason="throttling_max_request_len") == 1
    assert total(samples, "core_rejected_total", reason="throttling_max_requests") == 1
    assert total(samples, "core_rejected_total") == 3
    # the four requests that reached the model: 1 + 2 + 3 + 1 rows, one model call each
    assert total(samples, "core_predict_rows_count") == 4
    assert total(samples, "core_predict_rows_sum") == 7
    assert total(samples, "core_predict_duration_seconds_count", architecture="directly_to_predict") == 4
    assert total(samples, "core_batch_rows_count") == 0
    assert total(samples, "core_in_flight") == 0
    assert total(samples, "core_queue_depth") == 0
    assert total(samples, "core_model_info", name="test-model", version="1.0.0", binarizer="none",
                 storage="components.ObjectStorage") == 1
    assert total(samples, "core_model_load_seconds") >= 0
    assert any(name == "core_model_load_seconds" for name, _, _ in samples)


def test_folded_observations_expose_what_observe_would_have():
    """The request path queues its observations and ``Observations.fold`` adds them to the
    histogram's buckets in one go (through prometheus_client's own values): the exposition is
    the one ``observe`` gives, bucket by bucket, for values on, between and beyond the bounds."""
    values = [0.0, 0.0005, 0.0007, 0.001, 0.3, 2.5, 59.9, 60.0, 61.0, 1e9, *(i / 997 for i in range(500))]

    def exposition(feed: Any) -> list[tuple[str, dict[str, str], float]]:
        registry = CollectorRegistry()
        histogram = Histogram("h_seconds", "h", ["route"], buckets=DURATION_BUCKETS, registry=registry)
        feed(histogram.labels("/predict"))
        text = generate_latest(registry).decode()
        return [(sample.name, sample.labels, sample.value) for family in text_string_to_metric_families(text)
                for sample in family.samples if not sample.name.endswith("_created")]

    def observed(child: Any) -> None:
        for value in values:
            child.observe(value)

    def folded(child: Any) -> None:
        observations = Observations(child)
        for value in values[:200]:
            observations.add(value)
        observations.fold()
        for value in values[200:]:
            observations.add(value)
        observations.fold()
        observations.fold()  # nothing left: adds nothing

    expected, got = exposition(observed), exposition(folded)
    assert total(expected, "h_seconds_count") == len(values)
    assert [(name, labels) for name, labels, _ in got] == [(name, labels) for name, labels, _ in expected]
    # the bucket counts exactly; the sum up to the order of the float additions
    assert [value for *_, value in got] == pytest.approx([value for *_, value in expected], rel=1e-12)


def test_batching_counts_rows_per_model_call(serve):
    server = serve(logging_config(mode="batching", max_batch_size=8))
    for rows in (1, 3):
        assert httpx.post(f"{server.url}/predict", json={"X": [[1.0]] * rows}).status_code == 200
    samples = scrape(server.url)
    assert total(samples, "core_batch_rows_count") == 2
    assert total(samples, "core_batch_rows_sum") == 4
    assert total(samples, "core_predict_duration_seconds_count", architecture="batching") == 2


def test_metrics_can_be_turned_off_or_served_on_another_port(serve):
    off = serve(logging_config(metrics=False))
    assert httpx.post(f"{off.url}/predict", json={"X": [[1.0]]}).status_code == 200
    assert httpx.get(f"{off.url}/metrics").status_code == 404

    port = free_port()
    aside = serve(logging_config(metrics_port=port))
    assert httpx.post(f"{aside.url}/predict", json={"X": [[1.0]]}).status_code == 200
    assert httpx.get(f"{aside.url}/metrics").status_code == 404
    samples = scrape(f"http://127.0.0.1:{port}")
    assert total(samples, "core_requests_total", route="/predict", status="200") == 1


def test_a_bad_metrics_setting_is_one_line(server_factory):
    for settings, message in (
        ({"metrics": "yes"}, "config key 'metrics' must be bool"),
        ({"metrics_port": 70000}, "config key 'metrics_port' must be a port from 1 to 65535"),
        ({"metrics": False, "metrics_port": 9100}, "metrics_port' is set but metrics = false"),
        ({"log_format": "xml"}, "config key 'log_format' must be one of 'text', 'json', got 'xml'"),
    ):
        _code, log = server_factory(logging_config(**settings)).run_to_exit()
        lines = [line for line in log.splitlines() if "core: cannot start:" in line]
        assert len(lines) == 1 and message in lines[0], log
        assert "Traceback" not in log


def send_until_both_workers_answered(url: str, sent: list[int], pids: set[int]) -> None:
    """Predictions from 4 clients at once until both workers answered one (each answer names
    its pid); counts every request sent in ``sent``."""
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=DEADLINE) as http:
            for _ in range(100):
                with lock:
                    if len(pids) >= 2:
                        return
                response = http.post(f"{url}/predict", json={"X": [[1.0]], "seconds": 0.02})
                assert response.status_code == 200, response.text
                with lock:
                    sent.append(1)
                    pids.add(response.json()["predict_result"]["pid"])

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE * 2)


@pytest.mark.parametrize("workers", ["core serve --workers 2", "hypercorn --workers 2"])
def test_the_totals_across_workers_are_exact(serve, workers):
    if workers.startswith("core"):
        server = serve(object_config("faults:crashing_model"), command=[*SERVE, "--workers", "2"])
    else:
        server = serve(object_config("faults:crashing_model"), hypercorn_args=["--workers", "2"])
    sent: list[int] = []
    pids: set[int] = set()
    send_until_both_workers_answered(server.url, sent, pids)
    assert len(pids) == 2, "both workers answered"
    # each worker writes what it counted to the shared files within FLUSH_SECONDS
    wait_for(lambda: total(scrape(server.url), "core_requests_total") == len(sent), server,
             f"{len(sent)} requests counted")
    for _ in range(3):  # whichever worker answers the scrape reads every worker's counts
        samples = scrape(server.url)
        assert total(samples, "core_requests_total", route="/predict", status="200") == len(sent)
        assert total(samples, "core_predict_rows_count") == len(sent)
        assert total(samples, "core_model_info") == 1
        assert total(samples, "core_in_flight") == 0


def test_a_dead_workers_counts_are_kept_and_its_gauges_dropped(serve):
    server = serve(object_config("faults:crashing_model"), command=[*SERVE, "--workers", "2"])
    sent: list[int] = []
    pids: set[int] = set()
    send_until_both_workers_answered(server.url, sent, pids)
    wait_for(lambda: total(scrape(server.url), "core_requests_total") == len(sent), server,
             f"{len(sent)} requests counted")  # the workers flushed their counts to the files
    # a worker dies in the middle of a request: its file says one request in flight
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{server.url}/predict", json={"X": [[1.0]], "crash": "exit"}, timeout=DEADLINE)
    wait_for(lambda: "exited with code 1; starting a new one" in server.log()
             and " is serving" in server.log(), server, "the replacement")
    for _ in range(5):
        assert httpx.post(f"{server.url}/predict", json={"X": [[1.0]]}).status_code == 200
    wait_for(lambda: total(scrape(server.url), "core_requests_total") >= len(sent) + 5, server,
             "the 5 new requests counted")
    samples = scrape(server.url)
    # the dead worker's answers still count; the request it died on was never answered
    assert total(samples, "core_requests_total", status="200") == len(sent) + 5
    assert total(samples, "core_requests_total") == len(sent) + 5
    # its gauges were marked dead by the supervisor: nothing is left in flight
    assert total(samples, "core_in_flight") == 0
    assert total(samples, "core_model_info") == 1


ROUTE_AND_METRIC_PLUGIN = """
    import core
    from prometheus_client import Counter

    BUILDS = {}


    @core.hookimpl
    def register_metrics(registry, service):
        BUILDS[id(service)] = Counter("things_builds", "Web app builds.", registry=registry)
        BUILDS[id(service)].inc()


    @core.hookimpl
    def register_routes(service):
        async def thing(admission):
            return {"name": admission.request.path_params["name"]}

        return [service.gate.route("/things/{name}", thing, methods=["GET"], predicts=False)]
"""


def test_a_plugins_metric_and_route_are_on_metrics(serve, tmp_path):
    site = install_plugin(tmp_path, "core-things", "things", ROUTE_AND_METRIC_PLUGIN)
    server = serve(logging_config(), pythonpath=[SUPPORT, site])
    for name in ("a", "b", "c"):
        assert httpx.get(f"{server.url}/things/{name}").json() == {"name": name}
    samples = scrape(server.url)
    assert total(samples, "things_builds_total") == 1
    # the route's template labels the requests, never the raw path (label cardinality)
    assert total(samples, "core_requests_total", route="/things/{name}", method="GET", status="200") == 3
    assert not [labels for name, labels, _ in samples if labels.get("route", "").startswith("/things/a")]


def test_a_routes_folded_answers_expose_their_counts_durations_and_rows():
    """``RouteMetrics.answered`` queues each answer; the fold counts them by method and status,
    adds their durations to the route's histogram, and the rows of those that had rows (not
    None) to ``core_predict_rows``, all in one go."""
    metrics = Metrics(Config(), None)
    route = metrics.route("/predict")
    answers = [("POST", 200, 0.002, 1)] * 5 + [("POST", 422, 0.0004, None)] * 3 + \
              [("GET", 200, 0.01, None), ("POST", 200, 0.3, 100)]
    for answer in answers[:4]:
        route.answered(*answer)
    metrics.flush()
    for answer in answers[4:]:
        route.answered(*answer)
    metrics.flush()
    metrics.flush()  # nothing left: adds nothing
    body, _ = metrics.render(None)
    samples = [(sample.name, sample.labels, sample.value)
               for family in text_string_to_metric_families(body.decode()) for sample in family.samples]
    assert total(samples, "core_requests_total", route="/predict", method="POST", status="200") == 6
    assert total(samples, "core_requests_total", route="/predict", method="POST", status="422") == 3
    assert total(samples, "core_requests_total", route="/predict", method="GET", status="200") == 1
    assert total(samples, "core_request_duration_seconds_count", route="/predict") == len(answers)
    assert total(samples, "core_request_duration_seconds_sum", route="/predict") == \
        pytest.approx(sum(answer[2] for answer in answers))
    assert total(samples, "core_request_duration_seconds_bucket", route="/predict", le="0.001") == 3
    assert total(samples, "core_predict_rows_count") == 6  # the answers without rows are not counted
    assert total(samples, "core_predict_rows_sum") == 105


def test_queued_answers_leave_nothing_for_the_garbage_collector() -> None:
    """Answers wait up to a second for the fold; queued as objects the garbage collector
    tracks, a busy server's would set off a collection every few hundred requests (one per
    700 tracked objects). Queued as plain values, ten thousand set off none, and still fold
    to their counts."""
    metrics = Metrics(Config(), None)
    route = metrics.route("/predict")
    route.answered("POST", 200, 0.001, 1)
    metrics.flush()
    collections = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        for index in range(10_000):
            route.answered("POST", 200 if index % 2 else 422, 0.001, index % 7 or None)
    finally:
        gc.callbacks.remove(count)
    assert len(collections) <= 1
    metrics.flush()
    body, _ = metrics.render(None)
    samples = [(sample.name, sample.labels, sample.value)
               for family in text_string_to_metric_families(body.decode()) for sample in family.samples]
    assert total(samples, "core_requests_total", route="/predict", method="POST", status="200") == 5_001
    assert total(samples, "core_requests_total", route="/predict", method="POST", status="422") == 5_000
    assert total(samples, "core_predict_rows_count") == 1 + sum(1 for index in range(10_000) if index % 7)
