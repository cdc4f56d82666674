"""core-kubernetes: ``core manifests CONFIG --image IMAGE``, the manifests that serve a config
in a Kubernetes cluster (a ConfigMap with the config file; a Deployment, a Service and a
HorizontalPodAutoscaler, or a KServe InferenceService), for an image built from
``deploy/Dockerfile``. See the README.
"""

from __future__ import annotations

from typing import Any

from core import hookimpl

__version__ = "0.1.0"


@hookimpl(optionalhook=True)
def register_commands(commands: Any) -> None:
    """``core manifests``."""
    from core_kubernetes.command import add_command

    add_command(commands)
