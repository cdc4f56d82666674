"""The manifests' container command, run with the manifests' config on 127.0.0.1 as a pod runs
it: the probes the manifests name answer as Kubernetes needs them to, on the port they name."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from k8s_support import Pod, by_kind, manifests, pod_spec

from core.testing import Server

IMAGE = "registry.example/sleeper:1"


def probe_paths(documents: list[dict[str, Any]]) -> dict[str, str]:
    """Each probe's path, after checking that it asks the container's own port."""
    kinds = by_kind(documents)
    container = pod_spec(kinds.get("Deployment") or kinds["InferenceService"])["containers"][0]
    ports = {p["containerPort"] for p in container["ports"]}
    paths = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
        paths[probe] = container[probe]["httpGet"]["path"]
    return paths


def get(server: Server, path: str) -> httpx.Response:
    return httpx.get(server.url + path, timeout=10)


@pytest.mark.parametrize("options", [[], ["--workers", "2"], ["--name", "core-sleeper"]],
                         ids=["one-process", "workers", "a-service-named-core-something"])
def test_the_deployment_serves_its_probes(capsys: pytest.CaptureFixture[str], config_file: Callable[..., Path],
                                          pod: Callable[..., Pod], options: list[str]) -> None:
    documents = manifests(capsys, str(config_file()), "--image", IMAGE, *options)
    paths = probe_paths(documents)
    assert paths == {"startupProbe": "/health/live", "livenessProbe": "/health/live",
                     "readinessProbe": "/health/ready"}
    with pod(documents).server() as server:
        for path in paths.values():
            assert get(server, path).status_code == 200, path
        answer = httpx.post(server.url + "/predict", json={"X": [[0, 1, 2]]}, timeout=10)
        assert answer.json() == {"predict_result": [3]}
    assert server.process is not None and server.process.returncode == 0


def test_liveness_holds_through_a_long_prediction_and_readiness_fails_while_draining(
        capsys: pytest.CaptureFixture[str], config_file: Callable[..., Path], pod: Callable[..., Pod]) -> None:
    documents = manifests(capsys, str(config_file(drain_seconds=3.0, timeout_for_shutdown_daemon=10.0)),
                          "--image", IMAGE)
    paths = probe_paths(documents)
    deployment = by_kind(documents)["Deployment"]
    # the pod is given longer to stop than core's drain and grace periods
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 3 + 2 * 10
    with pod(documents).server() as server:
        answers: list[httpx.Response] = []
        started = threading.Event()

        def predict() -> None:
            started.set()
            answers.append(httpx.post(server.url + "/predict", json={"X": [[4.0]]}, timeout=30))

        long_call = threading.Thread(target=predict)
        long_call.start()
        started.wait()
        for _ in range(10_000):  # until the prediction is running (bounded: never hang the suite)
            if httpx.get(server.url + "/info", timeout=10).json()["architecture"]["in_flight"]:
                break
        else:
            pytest.fail("the prediction never ran")
        assert get(server, paths["livenessProbe"]).status_code == 200
        server.terminate()  # SIGTERM, as the kubelet sends it
        while get(server, paths["readinessProbe"]).status_code == 200:
            pass  # the drain begins once the signal is handled
        draining = get(server, paths["readinessProbe"])
        assert draining.status_code == 503 and draining.json()["reason"] == "shutting down"
        assert get(server, paths["livenessProbe"]).status_code == 200  # not restarted for that
        long_call.join()
        assert answers[0].status_code == 200 and answers[0].json() == {"predict_result": [4.0]}
        assert server.wait() == 0


def test_readiness_fails_until_the_model_is_loaded(capsys: pytest.CaptureFixture[str],
                                                   config_file: Callable[..., Path],
                                                   pod: Callable[..., Pod]) -> None:
    documents = manifests(capsys, str(config_file(load_seconds=3.0)), "--image", IMAGE)
    paths = probe_paths(documents)
    server = pod(documents).server()
    starting = threading.Thread(target=server.start)
    starting.start()
    try:
        first: int | str
        try:  # while the model loads nothing listens: the kubelet counts a refused connection as a failure
            first = get(server, paths["readinessProbe"]).status_code
        except httpx.TransportError as error:
            first = type(error).__name__
        assert first != 200
        starting.join()
        assert get(server, paths["readinessProbe"]).status_code == 200
    finally:
        starting.join()
        server.stop()


def test_the_inference_service_serves_the_v2_probes(capsys: pytest.CaptureFixture[str],
                                                    config_file: Callable[..., Path],
                                                    pod: Callable[..., Pod]) -> None:
    documents = manifests(capsys, str(config_file()), "--image", IMAGE, "--kserve")
    paths = probe_paths(documents)
    assert paths == {"startupProbe": "/v2/health/live", "livenessProbe": "/v2/health/live",
                     "readinessProbe": "/v2/health/ready"}
    emulated = pod(documents)
    assert emulated.env["PROTOCOL"] == "v2" and emulated.port == 8080
    with emulated.server() as server:
        for path in paths.values():
            assert get(server, path).status_code == 200, path
        body = {"inputs": [{"name": "X", "datatype": "FP64", "shape": [1, 2], "data": [0, 5]}]}
        answer = httpx.post(server.url + "/v2/models/sleeper/infer", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == [5.0]
