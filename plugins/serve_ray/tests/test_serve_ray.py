"""core served by Ray Serve: 2 replicas on a local Ray, answering as hypercorn does; a killed
replica is replaced while the other keeps answering; the ``[ray]`` table's mistakes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from core_serve_ray.deployment import application
from core_serve_ray.settings import RaySettings, parse_settings, split_config

from core.errors import ConfigError
from core.testing import Server

ROWS = [[0.5, 1.0, -2.0], [3.0, 0.0, 1.5], [0.0, 0.0, 0.0]]


def core_config(model_path: Path, **more: Any) -> dict[str, Any]:
    return {"name": "affine", "storage_type": "disk", "storage_kwargs": {"path_to_files": str(model_path)},
            "binarization_type": "onnx", "host": "127.0.0.1", **more}


def deploy(config: dict[str, Any], name: str, route_prefix: str = "/") -> None:
    """Serve ``config`` (with its ``ray`` table) as application ``name``; returns once every
    replica has loaded the model."""
    from ray import serve

    conf, settings = split_config(config, source=f"test {name}")
    serve.run(application(conf, settings), name=name, route_prefix=route_prefix)


def replicas(name: str) -> dict[str, int]:
    """The replica states of application ``name``'s deployment (``{"RUNNING": 2}``)."""
    from ray import serve

    status = serve.status().applications[name].deployments["core"]
    return {str(getattr(state, "value", state)): count for state, count in status.replica_states.items()}


def pids(url: str, want: int, deadline: float = 30) -> set[int]:
    """The pids of the replicas answering ``url`` (``/info`` names its process), asked until
    ``want`` distinct ones have answered."""
    seen: set[int] = set()
    end = time.monotonic() + deadline
    with httpx.Client(timeout=10) as client:
        while len(seen) < want and time.monotonic() < end:
            seen.add(client.get(f"{url}/info").json()["process"]["pid"])
    return seen


@pytest.fixture(scope="module")
def served(ray_serve: str, model_path: Path) -> Iterator[str]:
    """The model on 2 Ray Serve replicas, at the proxy's root."""
    from ray import serve

    deploy({**core_config(model_path), "ray": {"num_replicas": 2, "ray_actor_options": {"num_cpus": 0.5}}},
           "affine")
    yield ray_serve
    serve.delete("affine")


@pytest.fixture(scope="module")
def hypercorn(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(core_config(model_path), directory=tmp_path_factory.mktemp("hypercorn")) as server:
        yield server


def test_two_replicas_answer_as_hypercorn(served: str, hypercorn: Server) -> None:
    assert replicas("affine") == {"RUNNING": 2}
    assert len(pids(served, 2)) == 2  # both replicas answer, each its own process
    with httpx.Client(timeout=10) as client:
        for rows in (ROWS, ROWS[:1], []):
            ray_answer = client.post(f"{served}/predict", json={"X": rows})
            plain = httpx.post(f"{hypercorn.url}/predict", json={"X": rows})
            assert ray_answer.status_code == plain.status_code == 200
            assert ray_answer.json() == plain.json()
            assert ray_answer.headers["x-predict-id"]
        assert client.post(f"{served}/predict", json={"X": [[1.0, 1.0, 1.0]]}).json() == {
            "predict_result": {"Y": [[10.0, 13.0]]}}
        # An error: the same status and JSON (but for the predict id, each request's own).
        for body in ({"X": [[1.0, 2.0]]}, {"rows": ROWS}, {"X": [["a", 1.0, 2.0]]}):
            ray_error = client.post(f"{served}/predict", json=body)
            plain_error = httpx.post(f"{hypercorn.url}/predict", json=body)
            assert ray_error.status_code == plain_error.status_code == 422
            assert ray_error.json()["predict_id"] == ray_error.headers["x-predict-id"]
            assert {**ray_error.json(), "predict_id": None} == {**plain_error.json(), "predict_id": None}
        bad_json = client.post(f"{served}/predict", content=b"{not json",
                               headers={"content-type": "application/json"})
        assert bad_json.status_code == 400 and bad_json.json()["detail"][0]["type"]
        # /info: the same model, arguments and request schema; the process is the replica's.
        ray_info, plain_info = client.get(f"{served}/info").json(), httpx.get(f"{hypercorn.url}/info").json()
        for key in ("name", "version", "model", "request_schema"):
            assert ray_info[key] == plain_info[key], key
        assert ray_info["process"]["pid"] in pids(served, 2)
        assert client.get(f"{served}/health").json() == httpx.get(f"{hypercorn.url}/health").json()
        assert client.get(f"{served}/health/ready").status_code == 200
        # The V2 protocol's routes (core-protocol-v2, installed for these tests) answer too.
        v2 = {"inputs": [{"name": "X", "shape": [3, 3], "datatype": "FP32",
                          "data": [value for row in ROWS for value in row]}]}
        for body in (v2, {"inputs": [{**v2["inputs"][0], "data": [1, 2]}]}):
            ray_v2 = client.post(f"{served}/v2/models/affine/infer", json=body)
            plain_v2 = httpx.post(f"{hypercorn.url}/v2/models/affine/infer", json=body)
            assert ray_v2.status_code == plain_v2.status_code, (ray_v2.text, plain_v2.text)
            assert {k: v for k, v in ray_v2.json().items() if k != "id"} == {
                k: v for k, v in plain_v2.json().items() if k != "id"}
        assert ray_v2.status_code == 400
        assert client.get(f"{served}/v2/models/affine").json() == httpx.get(
            f"{hypercorn.url}/v2/models/affine").json()
        # A client's request id is the predict id, as under hypercorn, and sent back once.
        mine = client.post(f"{served}/predict", json={"X": ROWS}, headers={"x-request-id": "client-7"})
        assert mine.headers["x-predict-id"] == "client-7"
        assert mine.headers.get_list("x-request-id") == ["client-7"]


def test_long_prediction_fetched_back_from_any_replica(ray_serve: str, model_path: Path) -> None:
    """``is_long_predict``: the result is fetched by id through the proxy, which sends each
    GET to either replica; the ``local`` store in a directory both share answers it."""
    from ray import serve

    config = core_config(model_path, name="affine-long", mode="worker_and_queue", is_long_predict=True)
    deploy({**config, "ray": {"num_replicas": 2, "ray_actor_options": {"num_cpus": 0.25}}},
           "affine-long", route_prefix="/long")
    try:
        url = f"{ray_serve}/long"
        assert len(pids(url, 2)) == 2
        with httpx.Client(timeout=20) as client:
            accepted = client.post(f"{url}/predict", json={"X": ROWS})
            assert accepted.status_code == 202, accepted.text
            predict_id = accepted.json()["predict_id"]
            answers = [client.get(f"{url}/get-predict/{predict_id}") for _ in range(12)]
            assert {a.status_code for a in answers} == {200}
            results = [a.json() for a in answers]
            assert all(r == results[0] for r in results)
            assert results[0] == {"predict_result": {"Y": [[-5.5, -6.0], [11.5, 16.0], [1.0, 1.0]]}}
            assert client.get(f"{url}/get-predict/{'0' * 32}").status_code == 404
    finally:
        serve.delete("affine-long")


def test_killed_replica_is_replaced_while_the_other_answers(served: str) -> None:
    """SIGKILL one replica while a client posts without pause. Every request is answered:
    200, or 500 from Ray's proxy for the request the dead replica held (Ray answers a request
    whose replica died ``Internal Server Error``, as plain text; a prediction is safe to send
    again). The connection is never dropped, the other replica keeps answering, and Ray
    starts a new replica: the count is 2 again."""
    before = pids(served, 2)
    victim = min(before)
    answers: list[tuple[int, str]] = []
    killed_at: list[int] = []
    stop = threading.Event()

    def post() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    r = client.post(f"{served}/predict", json={"X": ROWS})
                    answers.append((r.status_code, r.text))
                except httpx.TransportError as error:  # would be a dropped connection
                    answers.append((-1, repr(error)))

    client = threading.Thread(target=post)
    client.start()
    try:
        while len(answers) < 20:
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)
        killed_at.append(len(answers))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if replicas("affine") == {"RUNNING": 2} and len(answers) > killed_at[0] + 20:
                now = pids(served, 2, deadline=10)
                if len(now) == 2 and victim not in now:
                    break
            time.sleep(0.5)
        settled = len(answers)
        while len(answers) < settled + 20:  # answers once the new replica is up
            time.sleep(0.05)
    finally:
        stop.set()
        client.join(30)
    assert replicas("affine") == {"RUNNING": 2}
    now = pids(served, 2)
    assert victim not in now and len(now) == 2 and len(now & before) == 1, (before, now)
    statuses = Counter(status for status, _ in answers)
    assert set(statuses) <= {200, 500}, statuses
    assert all(text == "Internal Server Error" for status, text in answers if status == 500), answers
    assert all(status == 200 for status, _ in answers[:killed_at[0] - 1]), statuses  # before the kill
    assert all(status == 200 for status, _ in answers[settled:]), statuses  # after the replacement
    assert sum(status == 200 for status, _ in answers[killed_at[0]:settled]) >= 20  # the other answered


def test_a_replica_without_its_model_never_serves(ray_serve: str, tmp_path: Path) -> None:
    """A model file that is missing: the replica's start fails with core's line, Ray reports
    the deployment as failed with it, and the proxy never routes a request to the app."""
    from core_serve_ray.cli import startup_line
    from ray import serve

    config = core_config(tmp_path / "missing.onnx", name="missing")
    with pytest.raises(Exception) as error:  # Ray's own error type for a failed deployment
        deploy({**config, "ray": {"num_replicas": 1, "max_constructor_retry_count": 1,
                                  "ray_actor_options": {"num_cpus": 0.25}}}, "missing", "/missing")
    line = startup_line(error.value, "missing")
    assert line is not None and line.startswith("core: cannot start: ") and "missing.onnx" in line, error.value
    assert httpx.post(f"{ray_serve}/missing/predict", json={"X": ROWS}).status_code in (404, 503)
    serve.delete("missing")


# ---------------------------------------------------------------------------- the [ray] table


def test_ray_table_is_checked() -> None:
    assert parse_settings({"num_replicas": 2}).options == {"num_replicas": 2}
    assert parse_settings(None) == RaySettings()
    cases = {
        "num_replica": (2, "unknown key 'num_replica'; did you mean 'num_replicas'?"),
        "autoscaling_config": ({"min_replicas": 1, "max_replica": 3},
                               "autoscaling_config: unknown key 'max_replica'; did you mean 'max_replicas'?"),
        "num_replicas": ("two", "num_replicas"),
        "ray_actor_options": ({"num_cpu": 1}, "num_cpu"),
        "max_ongoing_requests": (0, "max_ongoing_requests"),
        "route_prefix": ("api", "route_prefix must start with '/'"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(ConfigError) as error:
            parse_settings({key: value}, "c.toml")
        text = str(error.value)
        assert text.startswith("c.toml: [ray]") and message in text and "\n" not in text, text
    with pytest.raises(ConfigError, match="did you mean 'num_replicas'"):
        split_config({"name": "m", "ray": {"num_replica": 2}})
    with pytest.raises(ConfigError, match="unknown config key 'nmae'"):
        split_config({"nmae": "m", "ray": {"num_replicas": 2}})
    with pytest.raises(ConfigError, match="metrics_port"):
        split_config({"metrics_port": 9100})


def test_core_ray_command_reports_a_mistake_in_one_line(tmp_path: Path, model_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('name = "m"\n[ray]\nnum_replicas = 2\nautoscaling_config = { min_replicas = 1 }\n')
    done = subprocess.run([sys.executable, "-m", "core", "ray", str(config)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"core: error: {config}: [ray]: Manually setting num_replicas is not allowed when "
        "autoscaling_config is provided."], done.stderr
    # the same file, without the mistake, is a config core serve takes: the table is left out
    config.write_text(f'name = "m"\nstorage_type = "disk"\nstorage_kwargs = {{ path_to_files = "{model_path}" }}\n'
                      '[ray]\nnum_replicas = 2\n')
    checked = subprocess.run([sys.executable, "-m", "core", "validate", str(config)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert "ray" in subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True,
                                   text=True, timeout=60).stdout
