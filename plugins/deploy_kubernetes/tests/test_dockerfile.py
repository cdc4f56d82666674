"""The image recipe, ``deploy/Dockerfile``, read statically (docker cannot build here): it
installs core and plugins that exist, and what it runs (entry point, arguments, port, user,
config path) is what the manifests say the container runs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser
from k8s_support import by_kind, manifests, pod_spec

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


@pytest.fixture(scope="module")
def recipe() -> DockerfileParser:
    return DockerfileParser(str(DOCKERFILE))


def final_stage(recipe: DockerfileParser) -> list[dict[str, Any]]:
    """The instructions of the last stage (the image that runs)."""
    structure = recipe.structure
    start = max(i for i, item in enumerate(structure) if item["instruction"] == "FROM")
    return structure[start:]


def instruction(stage: list[dict[str, Any]], name: str) -> str:
    (value,) = [item["value"] for item in stage if item["instruction"] == name]
    return str(value)


def test_it_is_built_on_python_slim_and_installs_plugins_that_exist(recipe: DockerfileParser) -> None:
    froms = [item["value"] for item in recipe.structure if item["instruction"] == "FROM"]
    assert [f.split()[0] for f in froms] == ["python:3.11-slim", "python:3.11-slim"]
    (plugins,) = [item["value"] for item in recipe.structure
                  if item["instruction"] == "ARG" and item["value"].startswith("PLUGINS=")]
    for plugin in shlex.split(plugins.split("=", 1)[1])[0].split():
        assert (ROOT / "plugins" / plugin.split("[")[0] / "pyproject.toml").is_file(), plugin
    build = " ".join(item["value"] for item in recipe.structure if item["instruction"] == "RUN")
    assert "./plugins/$plugin" in build and "core plugins" in build  # the image checks its plugins load
    model_dir = recipe.args["MODEL_DIR"]
    assert (ROOT / model_dir).is_dir() and not any(  # no model baked in unless asked
        p.suffix in {".pkl", ".onnx", ".npz"} for p in (ROOT / model_dir).iterdir())


def test_its_build_step_makes_a_wheel_of_core_and_of_each_plugin(recipe: DockerfileParser, tmp_path: Path) -> None:
    """The build stage's RUN, as its shell runs it, in a folder laid out as its COPY lays out
    /src (the repository's root), with ``PLUGINS`` naming an extra; pip builds the wheels of
    what it names (their dependencies are left out here: they come from the package index)."""
    (run,) = [item["value"] for item in recipe.structure if item["instruction"] == "RUN" and "pip wheel" in item["value"]]
    pip = f"{shlex.quote(sys.executable)} -m pip wheel --no-deps --no-build-isolation --quiet"
    script = run.replace("pip wheel", pip).replace("/wheels", shlex.quote(str(tmp_path)))
    plugins = "storage_disk storage_remote[s3] protocol_v2"
    subprocess.run(["sh", "-c", script], cwd=ROOT, env={**os.environ, "PLUGINS": plugins}, check=True, timeout=300)
    assert sorted(wheel.name.split("-")[0] for wheel in tmp_path.glob("*.whl")) == [
        "core", "core_protocol_v2", "core_storage_disk", "core_storage_remote"]


@pytest.mark.parametrize("options", [[], ["--kserve"]], ids=["deployment", "kserve"])
def test_it_runs_what_the_manifests_say(capsys: pytest.CaptureFixture[str], recipe: DockerfileParser,
                                        config_file: Callable[..., Path], options: list[str]) -> None:
    documents = by_kind(manifests(capsys, str(config_file()), "--image", "x/y:1", *options))
    workload = documents.get("Deployment") or documents["InferenceService"]
    spec = pod_spec(workload)
    container = spec["containers"][0]
    stage = final_stage(recipe)
    assert json.loads(instruction(stage, "ENTRYPOINT")) == container["command"]
    assert json.loads(instruction(stage, "CMD")) == container["args"]
    assert instruction(stage, "EXPOSE") == str(container["ports"][0]["containerPort"])
    user = instruction(stage, "USER")
    assert user.isdigit()  # numeric: runAsNonRoot can be checked
    assert container["securityContext"]["runAsUser"] == int(user) and container["securityContext"]["runAsNonRoot"]
    if "securityContext" in spec:
        assert spec["securityContext"]["runAsUser"] == int(user)
    # the config the image reads by default is where the manifests mount it
    env = {item["name"]: item["value"] for item in container["env"]}
    assert recipe.envs["CORE_CONFIG"] == env["CORE_CONFIG"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert recipe.envs["CORE_CONFIG"].startswith(mounts["config"] + "/")
    if "CORE_CACHE_DIR" in env:
        assert recipe.envs["CORE_CACHE_DIR"] == env["CORE_CACHE_DIR"] == mounts["model-cache"]
    healthcheck = instruction(stage, "HEALTHCHECK")
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"].endswith("/health/live")
    assert f"127.0.0.1:{probe['port']}/health/live" in healthcheck
