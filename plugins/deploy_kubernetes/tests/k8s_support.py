"""What the tests share: ``core manifests`` run as the ``core`` command runs it, validation
against the Kubernetes API's schemas, and a pod emulated on 127.0.0.1 from the manifests (its
ConfigMap as files, its container's command and environment)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from core.cli import main
from core.testing import Server

MODELS = Path(__file__).parent / "models"
#: The Kubernetes version the manifests are validated against (the API's schemas, offline).
KUBERNETES_VERSION = "1.31.0"


def k8s_problems(document: dict[str, Any]) -> str | None:
    """kubernetes-validate's verdict, strict (an unknown field is an error): ``None`` if valid."""
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return str(error).splitlines()[0]
    return None


def manifests(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    """``core manifests ARGS`` (stdout): its documents, by kind."""
    code = main(["manifests", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return list(yaml.safe_load_all(out))


def by_kind(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{"Deployment": {...}, ...}``."""
    return {document["kind"]: document for document in documents}


def pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    """The pod of a Deployment or of an InferenceService's predictor."""
    if document["kind"] == "Deployment":
        return dict(document["spec"]["template"]["spec"])
    return dict(document["spec"]["predictor"])


class Pod:
    """The first container of a Deployment or InferenceService, run on 127.0.0.1 as the kubelet
    would run it: the ConfigMap volume's files under ``root``, the other volumes as empty folders
    (emptyDir), the container's environment with those paths, and its command and arguments with
    the pod's address and port made 127.0.0.1 and a free port."""

    def __init__(self, documents: list[dict[str, Any]], root: Path) -> None:
        kinds = by_kind(documents)
        workload = kinds.get("Deployment") or kinds["InferenceService"]
        spec = pod_spec(workload)
        self.container: dict[str, Any] = spec["containers"][0]
        self.mounts: dict[str, Path] = {}
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for mount in self.container["volumeMounts"]:
            folder = root / mount["mountPath"].strip("/").replace("/", "-")
            folder.mkdir(parents=True)
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                config_map = next(d for d in documents if d["kind"] == "ConfigMap"
                                  and d["metadata"]["name"] == volume["configMap"]["name"])
                for key, text in config_map["data"].items():
                    (folder / key).write_text(text)
            else:
                assert volume == {"name": mount["name"], "emptyDir": {}}
            self.mounts[mount["mountPath"]] = folder
        self.env = {item["name"]: self.local(item["value"]) for item in self.container["env"]}
        if spec.get("enableServiceLinks", True):  # what the kubelet adds for the namespace's Services
            for service in (d for d in documents if d["kind"] == "Service"):
                prefix = service["metadata"]["name"].upper().replace("-", "_")
                port = service["spec"]["ports"][0]["port"]
                self.env.update({f"{prefix}_SERVICE_HOST": "10.96.0.10", f"{prefix}_SERVICE_PORT": str(port),
                                 f"{prefix}_PORT": f"tcp://10.96.0.10:{port}"})
        self.root = root

    def local(self, value: str) -> str:
        """A path in the container, as the emulated pod has it."""
        for mount_path, folder in self.mounts.items():
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(folder) + value[len(mount_path):]
        return value

    @property
    def port(self) -> int:
        (port,) = [p["containerPort"] for p in self.container["ports"] if p.get("name") in (None, "http")]
        return int(port)

    def argv(self) -> list[str]:
        """The container's command line, with ``--host 0.0.0.0 --port 8080`` made loopback."""
        args = list(self.container["args"])
        host, port = args.index("--host"), args.index("--port")
        assert args[host + 1] == "0.0.0.0" and args[port + 1] == str(self.port)
        args[host + 1], args[port + 1] = "127.0.0.1", "{port}"
        (executable,) = self.container["command"]
        return [str(Path(sys.executable).parent / executable), *args]

    def server(self) -> Server:
        """A :class:`core.testing.Server` running the container's command (not started)."""
        return Server(None, directory=self.root, command=self.argv(), env=self.env, pythonpath=[MODELS])
