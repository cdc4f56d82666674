"""Every manifest ``core manifests`` writes is valid: the Kubernetes objects against the API's
schemas (kubernetes-validate, strict, at a pinned version), the InferenceService against the
KServe SDK's models; a mistaken manifest is refused, so that the validation can fail; and what
the manifests say matches the config they carry."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_support import by_kind, k8s_problems, manifests, pod_spec
from kserve_schema import problems as kserve_problems

IMAGE = "registry.example/sleeper:1"

CASES = {
    "plain": [],
    "workers": ["--workers", "3", "--cpu", "3", "--memory", "3Gi"],
    "fixed-replicas": ["--replicas", "2", "--namespace", "models", "--name", "sleeper-prod"],
    "credentials": ["--secret", "s3-credentials", "--secret", "extra", "--service-account", "models-reader",
                    "--min", "2", "--max", "10", "--cpu-target", "60", "--cpu", "500m", "--memory", "512Mi"],
    "kserve": ["--kserve"],
    "kserve-everything": ["--kserve", "--workers", "2", "--storage-uri", "s3://models/sleeper/",
                          "--secret", "s3-credentials", "--service-account", "models-reader",
                          "--namespace", "models", "--min", "0", "--max", "3"],
}


def validate(document: dict[str, Any]) -> list[str]:
    """The schema's complaints about ``document``: none when it is valid."""
    if document["kind"] == "InferenceService":
        return kserve_problems(document)
    problem = k8s_problems(document)
    return [problem] if problem else []


def container(document: dict[str, Any]) -> dict[str, Any]:
    return dict(pod_spec(document)["containers"][0])


@pytest.mark.parametrize("options", CASES.values(), ids=CASES.keys())
def test_every_manifest_is_valid(capsys: pytest.CaptureFixture[str], config_file: Callable[..., Path],
                                 options: list[str]) -> None:
    documents = manifests(capsys, str(config_file()), "--image", IMAGE, *options)
    kinds = [d["kind"] for d in documents]
    if "--kserve" in options:
        assert kinds == ["ConfigMap", "InferenceService"]
    elif "--replicas" in options:
        assert kinds == ["ConfigMap", "Deployment", "Service"]
    else:
        assert kinds == ["ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"]
    for document in documents:
        assert validate(document) == [], document["kind"]


def test_a_yaml_config_with_a_metrics_port(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           model_file: Callable[..., Path]) -> None:
    config = tmp_path / "service.yaml"
    config.write_text(yaml.safe_dump({"name": "Sleeper_v2", "storage_type": "disk", "binarization_type": "pickle",
                                      "storage_kwargs": {"path_to_files": str(model_file())},
                                      "metrics_port": 9100}))
    kinds = by_kind(manifests(capsys, str(config), "--image", IMAGE))
    for document in kinds.values():
        assert validate(document) == [], document["kind"]
    assert kinds["ConfigMap"]["data"] == {"config.yaml": config.read_text()}
    assert kinds["Deployment"]["metadata"]["name"] == "sleeper-v2"  # the config's name, made a DNS label
    pod = kinds["Deployment"]["spec"]["template"]
    assert {"name": "CORE_CONFIG", "value": "/etc/core/config.yaml"} in container(kinds["Deployment"])["env"]
    assert [p["containerPort"] for p in container(kinds["Deployment"])["ports"]] == [8080, 9100]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9100"
    assert [p["targetPort"] for p in kinds["Service"]["spec"]["ports"]] == ["http", "metrics"]


MISTAKES: dict[str, Callable[[dict[str, Any]], None]] = {
    "a misspelt field": lambda c: c.update(readinesProbe=c.pop("readinessProbe")),
    "a port as text": lambda c: c["ports"][0].update(containerPort="eighty"),
    "a container without a name": lambda c: c.pop("name"),
}


@pytest.mark.parametrize("kind", ["Deployment", "InferenceService"])
@pytest.mark.parametrize("mistake", MISTAKES.values(), ids=MISTAKES.keys())
def test_a_mistaken_manifest_is_refused(capsys: pytest.CaptureFixture[str], config_file: Callable[..., Path],
                                        kind: str, mistake: Callable[[dict[str, Any]], None]) -> None:
    options = ["--kserve"] if kind == "InferenceService" else []
    document = by_kind(manifests(capsys, str(config_file()), "--image", IMAGE, *options))[kind]
    assert validate(document) == []
    wrong = copy.deepcopy(document)
    mistake(pod_spec(wrong)["containers"][0])
    assert validate(wrong) != []


def test_other_mistakes_are_refused(capsys: pytest.CaptureFixture[str], config_file: Callable[..., Path]) -> None:
    kinds = by_kind(manifests(capsys, str(config_file()), "--image", IMAGE))
    autoscaler = copy.deepcopy(kinds["HorizontalPodAutoscaler"])
    autoscaler["spec"]["targetCPUUtilizationPercentage"] = 70  # autoscaling/v1's field, not v2's
    assert validate(autoscaler)
    service = copy.deepcopy(kinds["Service"])
    service["spec"]["ports"][0]["port"] = "80"
    assert validate(service)
    isvc = by_kind(manifests(capsys, str(config_file()), "--image", IMAGE, "--kserve"))["InferenceService"]
    isvc["spec"]["predictor"]["minReplica"] = 1
    assert kserve_problems(isvc) == [".spec.predictor.minReplica: unknown field of V1beta1PredictorSpec"]


def test_the_grace_period_outlasts_cores_shutdown(capsys: pytest.CaptureFixture[str],
                                                  config_file: Callable[..., Path]) -> None:
    drain, grace = 5.0, 20.0
    kinds = by_kind(manifests(capsys, str(config_file(drain_seconds=drain, timeout_for_shutdown_daemon=grace)),
                              "--image", IMAGE))
    seconds = kinds["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # drain_seconds serving while not ready, then hypercorn's graceful_timeout and the
    # architecture's timeout_for_shutdown_daemon, each timeout_for_shutdown_daemon
    assert seconds > drain + 2 * grace
    default = by_kind(manifests(capsys, str(config_file()), "--image", IMAGE))["Deployment"]
    assert default["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30  # Kubernetes' own


def test_what_the_pods_run(capsys: pytest.CaptureFixture[str], config_file: Callable[..., Path]) -> None:
    config = config_file()
    kinds = by_kind(manifests(capsys, str(config), "--image", IMAGE, "--workers", "2", "--cpu", "2",
                              "--memory", "2Gi", "--startup-seconds", "900"))
    run = container(kinds["Deployment"])
    assert run["image"] == IMAGE
    assert run["command"] == ["core"]
    assert run["args"] == ["serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
    assert run["resources"] == {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    startup = run["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 900
    assert kinds["ConfigMap"]["data"] == {"config.toml": config.read_text()}
    mount = next(m for m in run["volumeMounts"] if m["name"] == "config")
    assert {"name": "CORE_CONFIG", "value": mount["mountPath"] + "/config.toml"} in run["env"]
    assert kinds["Service"]["spec"]["selector"] == kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"]
    assert "replicas" not in kinds["Deployment"]["spec"]  # the autoscaler owns it


def test_a_changed_config_rolls_the_pods(capsys: pytest.CaptureFixture[str], config_file: Callable[..., Path]) -> None:
    def hashes() -> tuple[str, str]:
        deployment = by_kind(manifests(capsys, str(config), "--image", IMAGE))["Deployment"]
        isvc = by_kind(manifests(capsys, str(config), "--image", IMAGE, "--kserve"))["InferenceService"]
        key = "core-kubernetes/config-sha256"
        return deployment["spec"]["template"]["metadata"]["annotations"][key], isvc["spec"]["predictor"]["annotations"][key]

    config = config_file()
    before = hashes()
    config = config_file(log_level="DEBUG")
    after = hashes()
    assert before[0] == before[1] and after[0] == after[1] and before != after


def test_the_inference_service_is_a_v2_custom_predictor(capsys: pytest.CaptureFixture[str],
                                                        config_file: Callable[..., Path]) -> None:
    isvc = by_kind(manifests(capsys, str(config_file()), "--image", IMAGE, "--kserve", "--storage-uri",
                             "gs://bucket/sleeper"))["InferenceService"]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    run = container(isvc)
    assert run["name"] == "kserve-container"  # the name KServe looks for
    assert {"name": "PROTOCOL", "value": "v2"} in run["env"]  # how KServe learns a custom predictor's protocol
    assert {"name": "STORAGE_URI", "value": "gs://bucket/sleeper"} in run["env"]
    assert run["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert run["args"][run["args"].index("--port") + 1] == "8080"
    predictor = isvc["spec"]["predictor"]
    assert (predictor["scaleMetric"], predictor["scaleTarget"], predictor["minReplicas"]) == ("cpu", 70, 1)


def test_scale_to_zero_leaves_the_metric_to_knative(capsys: pytest.CaptureFixture[str],
                                                    config_file: Callable[..., Path]) -> None:
    isvc = by_kind(manifests(capsys, str(config_file()), "--image", IMAGE, "--kserve", "--min", "0"))["InferenceService"]
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] == 0 and "scaleMetric" not in predictor and "scaleTarget" not in predictor
    assert kserve_problems(isvc) == []
