"""``core manifests`` as a user runs it: the command is listed, it writes a file or prints the
YAML, and every mistake is one line (``core: error: ...``, exit 1)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from core_kubernetes.manifests import PROBES
from k8s_support import by_kind

from core.cli import main
from core.testing import Server

IMAGE = "registry.example/sleeper:1"


def core(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).parent / "core"
    return subprocess.run([str(executable), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_command_is_listed_and_writes_a_file(tmp_path: Path, config_file: Callable[..., Path]) -> None:
    listed = core("--help", cwd=tmp_path)
    assert listed.returncode == 0 and "manifests" in listed.stdout
    done = core("manifests", str(config_file()), "--image", IMAGE, "--out", "deploy/k8s", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "deploy" / "k8s" / "sleeper.yaml"
    assert done.stdout == "wrote deploy/k8s/sleeper.yaml; apply it with: kubectl apply -f deploy/k8s/sleeper.yaml\n"
    assert list(by_kind(list(yaml.safe_load_all(written.read_text())))) == [
        "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"]


MISTAKES = {
    "no config": (["missing.toml"], "missing.toml: no such config file"),
    "a model path": (["model.pkl"], "model.pkl: not a config file"),
    "min over max": (["{config}", "--min", "5", "--max", "2"], "--min 5 is more than --max 2"),
    "bad cpu": (["{config}", "--cpu", "two"], "--cpu 'two': must be a CPU quantity"),
    "zero memory": (["{config}", "--memory", "0Gi"], "--memory '0Gi': must be a memory quantity above 0"),
    "zero workers": (["{config}", "--workers", "0"], "--workers 0: must be 1 or more"),
    "words for workers": (["{config}", "--workers", "many"], "--workers 'many': must be a whole number"),
    "storage uri without kserve": (["{config}", "--storage-uri", "s3://b/m"], "--storage-uri is KServe's"),
    "replicas with kserve": (["{config}", "--kserve", "--replicas", "2"], "--replicas is for the Deployment"),
    "a bad name": (["{config}", "--name", "Sleeper_1"], "--name 'Sleeper_1': must be a DNS label"),
    "a bad secret": (["{config}", "--secret", "S3 keys"], "--secret 'S3 keys': must be the name of a Secret"),
    "replicas and an autoscaler": (["{config}", "--replicas", "2", "--max", "5"],
                                   "--replicas fixes the number of pods; --max set the autoscaler"),
    "scale to zero without kserve": (["{config}", "--min", "0"], "--min 0 (scale to zero) is for KServe"),
    "scale to zero on cpu": (["{config}", "--kserve", "--min", "0", "--cpu-target", "50"],
                             "--min 0 scales to zero on KServe's own metric"),
    "a bad target": (["{config}", "--cpu-target", "150"], "--cpu-target 150: must be a percentage"),
    "metrics on the service's port": (["{metrics_config}"], "metrics_port = 8080 is the port core serves on"),
    "an unknown config key": (["{bad_config}"], "unknown config key 'storage_typ'; did you mean 'storage_type'?"),
}


@pytest.mark.parametrize(("args", "message"), MISTAKES.values(), ids=MISTAKES.keys())
def test_mistakes_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                               config_file: Callable[..., Path], args: list[str], message: str) -> None:
    config = config_file()
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text('name = "x"\nstorage_typ = "disk"\n')
    metrics_config = config_file(filename="metrics.toml", metrics_port=8080)
    argv = [a.format(config=config, bad_config=bad_config, metrics_config=metrics_config) for a in args]
    assert main(["manifests", *argv, "--image", IMAGE]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("core: error: ") and err.count("\n") == 1 and message in err, err


def test_an_unwritable_out_is_one_line(tmp_path: Path, config_file: Callable[..., Path]) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    done = core("manifests", str(config_file()), "--image", IMAGE, "--out", "taken", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("core: error: --out taken: cannot write") and done.stderr.count("\n") == 1


def test_the_mlcomponent_manifest_still_serves(tmp_path: Path) -> None:
    """core-kubernetes adds a command beside core-mlcomponent's ``--manifest``: the seeds'
    MLComponent manifest (the repository's example of it) is still served by ``core serve
    --manifest``, and answers the probes the Deployment names."""
    example = Path(__file__).resolve().parents[3] / "examples" / "mlcomponent" / "manifest.yaml"
    assert "manifests" in core("--help", cwd=tmp_path).stdout
    executable = Path(sys.executable).parent / "core"
    command = [str(executable), "serve", "--manifest", str(example), "--host", "127.0.0.1", "--port", "{port}"]
    with Server(None, directory=tmp_path, command=command) as server:
        for path in PROBES.values():
            assert httpx.get(server.url + path, timeout=10).status_code == 200, path
        body = {"inputs": [{"name": "features", "datatype": "FP32", "data": [54, 2, 30], "shape": [1, 3]}],
                "parameters": [["round", 0]]}
        answer = httpx.post(server.url + "/inference", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
