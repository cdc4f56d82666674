"""The Kubernetes objects that run ``core serve`` for one config, as plain dicts.

:func:`manifests` builds them from the config file's text and :class:`Settings`: a ConfigMap
holding the config file as it is, and either a Deployment, a Service and a
HorizontalPodAutoscaler (``autoscaling/v2``), or a KServe ``InferenceService`` whose custom
predictor speaks the V2 protocol (``core-protocol-v2`` in the image). Everything the objects say
about the container matches the image recipe ``deploy/Dockerfile``: :data:`COMMAND`,
:data:`ARGS`, :data:`PORT`, :data:`USER_ID`, :data:`CONFIG_DIR`.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import PurePosixPath
from typing import Any

import attrs

from core.config import CONFIG_ENV, Config
from core.errors import ConfigError

#: The port core serves on in the container; 8080 is the port KServe expects of a custom
#: predictor (Knative's default ``PORT``).
PORT = 8080
#: The container's command, the image's ``ENTRYPOINT``.
COMMAND = ["core"]
#: The image's ``CMD``: ``core serve`` on every interface of the pod, on :data:`PORT`, with the
#: config that ``CORE_CONFIG`` names (``--workers N`` is added when asked).
ARGS = ["serve", "--host", "0.0.0.0", "--port", str(PORT)]
#: The image's non-root user (numeric, so that ``runAsNonRoot`` can be checked by the kubelet).
USER_ID = 10001
#: Where the ConfigMap is mounted; the config file is ``CONFIG_DIR/config<suffix>``.
CONFIG_DIR = "/etc/core"
#: Where a model downloaded by the ``remote`` storage is cached (``CORE_CACHE_DIR``), an
#: ``emptyDir`` of the pod in the Deployment.
CACHE_DIR = "/var/cache/core"
#: Core's probes, and the V2 protocol's (``core-protocol-v2``) that KServe uses: both answer
#: from the same checks (``service.live()``, ``service.ready()``).
PROBES = {"live": "/health/live", "ready": "/health/ready"}
V2_PROBES = {"live": "/v2/health/live", "ready": "/v2/health/ready"}
#: Seconds a pod gets beyond core's own worst case to stop (``drain_seconds`` + hypercorn's
#: ``graceful_timeout`` + the architecture's ``timeout_for_shutdown_daemon``): the supervisor's
#: margin before it kills a worker (5 s), and the process's exit.
STOP_MARGIN = 10
#: Seconds between two start-up probes while the model loads.
STARTUP_PERIOD = 5
#: An annotation on the pod template with the config file's sha256: a changed config rolls
#: the pods on ``kubectl apply`` (a ConfigMap change alone would not restart them).
CONFIG_HASH_ANNOTATION = "core-kubernetes/config-sha256"

#: The pods' ``enableServiceLinks``: false, because the kubelet would otherwise give every
#: container ``<SERVICE>_SERVICE_HOST``, ``<SERVICE>_PORT``... for each Service of the
#: namespace, and a Service whose name starts with ``core`` (``core-iris``) makes them
#: ``CORE_*`` variables; core skips them (:data:`core.config.SERVICE_LINK_NAME`, a ``tcp://``
#: port with a warning line), but the environment is clearer without. Services are found
#: through DNS instead.
ENABLE_SERVICE_LINKS = False

_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_CPU = re.compile(r"(\d+(\.\d+)?|\.\d+)m?")
_MEMORY = re.compile(r"(\d+(\.\d+)?|\.\d+)([EPTGMk]i?|Ki|e\d+)?")


@attrs.frozen
class Settings:
    """What ``core manifests`` was asked for (its options; see the plugin's README).

    :ivar image: the image built from ``deploy/Dockerfile``.
    :ivar name: the objects' name (a DNS label); default: the config's ``name``, made one.
    :ivar namespace: the objects' namespace; default: none (``kubectl``'s current one).
    :ivar replicas: a fixed number of pods, and no HorizontalPodAutoscaler.
    :ivar min_replicas: the autoscaler's least number of pods (0, scale to zero: KServe only).
    :ivar max_replicas: the autoscaler's most.
    :ivar cpu_target: the average CPU use, in percent of the request, the autoscaler aims at.
    :ivar cpu: CPU request and limit of the container (``"1"``, ``"500m"``).
    :ivar memory: memory request and limit (``"1Gi"``); each worker holds its own model.
    :ivar workers: ``core serve --workers N`` (N processes in a pod); none: one process.
    :ivar startup_seconds: how long the model may take to load before the pod is restarted.
    :ivar secrets: Secrets whose keys become environment variables (storage credentials).
    :ivar service_account: the pods' ServiceAccount (cloud workload identity).
    :ivar kserve: an InferenceService instead of the Deployment, Service and autoscaler.
    :ivar storage_uri: KServe only: a model URI its storage initializer downloads to
        ``/mnt/models`` before core starts.
    """

    image: str
    name: str | None = None
    namespace: str | None = None
    replicas: int | None = None
    min_replicas: int = 1
    max_replicas: int = 4
    cpu_target: int = 70
    cpu: str = "1"
    memory: str = "1Gi"
    workers: int | None = None
    startup_seconds: int = 600
    secrets: tuple[str, ...] = ()
    service_account: str | None = None
    kserve: bool = False
    storage_uri: str | None = None


def object_name(conf: Config, settings: Settings) -> str:
    """The objects' name: ``settings.name`` (which must be a DNS label), or the config's
    ``name`` lowercased with every other character made ``-``."""
    if settings.name is not None:
        if not _is_dns_label(settings.name):
            raise ConfigError(f"--name {settings.name!r}: must be a DNS label (lowercase letters, digits "
                              f"and '-', starting with a letter, at most 63 characters)")
        return settings.name
    name = re.sub(r"[^a-z0-9]+", "-", conf.name.lower()).strip("-")
    if name and not name[0].isalpha():
        name = "model-" + name
    name = name[:63].rstrip("-")
    if not _is_dns_label(name):
        raise ConfigError(f"the config's name {conf.name!r} cannot be made a Kubernetes name: give --name")
    return name


def _is_dns_label(text: str) -> bool:
    return len(text) <= 63 and _DNS_LABEL.fullmatch(text) is not None


def check(settings: Settings) -> None:
    """Refuse settings Kubernetes would refuse, or that contradict each other, in one line."""
    if not settings.image.strip() or any(c.isspace() for c in settings.image):
        raise ConfigError(f"--image {settings.image!r}: give the image reference, e.g. registry.example/iris:1")
    if _CPU.fullmatch(settings.cpu) is None or _zero(settings.cpu):
        raise ConfigError(f"--cpu {settings.cpu!r}: must be a CPU quantity above 0, e.g. 1, 2 or 500m")
    if _MEMORY.fullmatch(settings.memory) is None or _zero(settings.memory):
        raise ConfigError(f"--memory {settings.memory!r}: must be a memory quantity above 0, e.g. 512Mi or 2Gi")
    if settings.replicas is not None and settings.kserve:
        raise ConfigError("--replicas is for the Deployment; with --kserve give --min and --max "
                          "(KServe scales the predictor)")
    if settings.min_replicas == 0 and not settings.kserve:
        raise ConfigError("--min 0 (scale to zero) is for KServe's serverless mode (--kserve); a "
                          "HorizontalPodAutoscaler keeps at least 1 pod")
    if settings.min_replicas > settings.max_replicas:
        raise ConfigError(f"--min {settings.min_replicas} is more than --max {settings.max_replicas}")
    if not 1 <= settings.cpu_target <= 100:
        raise ConfigError(f"--cpu-target {settings.cpu_target}: must be a percentage from 1 to 100")
    if settings.storage_uri is not None and not settings.kserve:
        raise ConfigError("--storage-uri is KServe's storage initializer: add --kserve (without KServe, "
                          "use the `remote` storage in the config)")
    for secret in settings.secrets:
        if not _is_dns_subdomain(secret):
            raise ConfigError(f"--secret {secret!r}: must be the name of a Secret (lowercase letters, "
                              "digits, '-' and '.')")
    if settings.service_account is not None and not _is_dns_subdomain(settings.service_account):
        raise ConfigError(f"--service-account {settings.service_account!r}: must be the name of a "
                          "ServiceAccount (lowercase letters, digits, '-' and '.')")
    if settings.namespace is not None and not _is_dns_label(settings.namespace):
        raise ConfigError(f"--namespace {settings.namespace!r}: must be a DNS label (lowercase letters, "
                          "digits and '-')")


def _zero(quantity: str) -> bool:
    number = re.match(r"[\d.]+", quantity)
    return number is None or float(number.group()) == 0


def _is_dns_subdomain(text: str) -> bool:
    return len(text) <= 253 and all(_is_dns_label(part) or part.isdigit() for part in text.split("."))


def config_path(suffix: str) -> str:
    """Where the config file is in the container: ``/etc/core/config<suffix>``."""
    return str(PurePosixPath(CONFIG_DIR) / f"config{suffix}")


def termination_grace_seconds(conf: Config) -> int:
    """Longer than core's worst graceful shutdown: ``drain_seconds`` serving with readiness
    false, hypercorn's ``graceful_timeout`` (``timeout_for_shutdown_daemon``) for the requests
    in flight, the architecture's ``timeout_for_shutdown_daemon`` to finish its queue, and
    :data:`STOP_MARGIN`. Kubernetes' default, 30 s, is used when it is longer."""
    return max(30, math.ceil(conf.drain_seconds + 2 * conf.timeout_for_shutdown_daemon) + STOP_MARGIN)


def manifests(config_text: str, suffix: str, conf: Config, settings: Settings) -> list[dict[str, Any]]:
    """The objects for ``conf`` (read from ``config_text``, a config file ending in ``suffix``):
    ``[ConfigMap, Deployment, Service, HorizontalPodAutoscaler]`` (no autoscaler with
    ``replicas``), or ``[ConfigMap, InferenceService]`` with ``kserve``."""
    check(settings)
    if conf.metrics and conf.metrics_port == PORT:
        raise ConfigError(f"metrics_port = {PORT} is the port core serves on in the container; choose "
                          "another (e.g. 9100), or none to answer /metrics on the service's port")
    name = object_name(conf, settings)
    config_map = _config_map(name, config_text, suffix, settings)
    if settings.kserve:
        return [config_map, _inference_service(name, config_text, suffix, conf, settings)]
    objects = [config_map, _deployment(name, config_text, suffix, conf, settings), _service(name, conf, settings)]
    if settings.replicas is None:
        objects.append(_autoscaler(name, settings))
    return objects


def _metadata(name: str, settings: Settings, *, suffix: str = "") -> dict[str, Any]:
    """``name`` + ``suffix`` in the namespace, labelled as a part of ``name``."""
    metadata: dict[str, Any] = {"name": name + suffix}
    if settings.namespace is not None:
        metadata["namespace"] = settings.namespace
    metadata["labels"] = _labels(name)
    return metadata


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "model-server",
            "app.kubernetes.io/managed-by": "core-kubernetes"}


def _config_map(name: str, config_text: str, suffix: str, settings: Settings) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(name, settings, suffix="-config"),
            "data": {f"config{suffix}": config_text}}


def _args(settings: Settings) -> list[str]:
    return [*ARGS, *(["--workers", str(settings.workers)] if settings.workers else [])]


def _probe(path: str, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": PORT}, **timing}


def _probes(paths: dict[str, str], settings: Settings) -> dict[str, Any]:
    """Start-up: the model loads before core listens, so the connection is refused until then;
    ``startup_seconds`` bound it. Liveness: fails only for predictions stuck past
    ``predict_timeout`` (a long prediction does not fail it). Readiness: fails until the model
    is loaded, while draining after SIGTERM, and while saturated."""
    return {
        "startupProbe": _probe(paths["live"], periodSeconds=STARTUP_PERIOD, timeoutSeconds=2,
                               failureThreshold=max(1, math.ceil(settings.startup_seconds / STARTUP_PERIOD))),
        "livenessProbe": _probe(paths["live"], periodSeconds=10, timeoutSeconds=5, failureThreshold=3),
        "readinessProbe": _probe(paths["ready"], periodSeconds=2, timeoutSeconds=2, failureThreshold=1),
    }


def _resources(settings: Settings) -> dict[str, Any]:
    amounts = {"cpu": settings.cpu, "memory": settings.memory}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _env(suffix: str, *, cache: bool) -> list[dict[str, Any]]:
    env = [{"name": CONFIG_ENV, "value": config_path(suffix)}]
    if cache:
        env.append({"name": "CORE_CACHE_DIR", "value": CACHE_DIR})
    return env


def _container_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID,
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def _config_volume(name: str) -> dict[str, Any]:
    return {"name": "config", "configMap": {"name": f"{name}-config"}}


def _pod_annotations(config_text: str, conf: Config) -> dict[str, str]:
    annotations = {CONFIG_HASH_ANNOTATION: _sha256(config_text)}
    if conf.metrics:
        annotations.update({"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics",
                            "prometheus.io/port": str(conf.metrics_port or PORT)})
    return annotations


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _deployment(name: str, config_text: str, suffix: str, conf: Config, settings: Settings) -> dict[str, Any]:
    ports: list[dict[str, Any]] = [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
    if conf.metrics and conf.metrics_port is not None:
        ports.append({"name": "metrics", "containerPort": conf.metrics_port, "protocol": "TCP"})
    container: dict[str, Any] = {
        "name": "core",
        "image": settings.image,
        "command": list(COMMAND),
        "args": _args(settings),
        "ports": ports,
        "env": _env(suffix, cache=True),
        **({"envFrom": [{"secretRef": {"name": secret}} for secret in settings.secrets]}
           if settings.secrets else {}),
        "resources": _resources(settings),
        **_probes(PROBES, settings),
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": "model-cache", "mountPath": CACHE_DIR}],
        "securityContext": _container_security(),
    }
    pod_spec: dict[str, Any] = {
        **({"serviceAccountName": settings.service_account} if settings.service_account else {}),
        "enableServiceLinks": ENABLE_SERVICE_LINKS,
        "terminationGracePeriodSeconds": termination_grace_seconds(conf),
        "securityContext": {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID,
                            "fsGroup": USER_ID, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [_config_volume(name), {"name": "model-cache", "emptyDir": {}}],
    }
    spec: dict[str, Any] = {}
    if settings.replicas is not None:
        spec["replicas"] = settings.replicas
    spec.update({
        "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
        # a new pod takes traffic once ready, an old one leaves once its replacement is ready
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": _labels(name),
                         "annotations": _pod_annotations(config_text, conf)},
            "spec": pod_spec,
        },
    })
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(name, settings), "spec": spec}


def _service(name: str, conf: Config, settings: Settings) -> dict[str, Any]:
    ports: list[dict[str, Any]] = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    if conf.metrics and conf.metrics_port is not None:
        ports.append({"name": "metrics", "port": conf.metrics_port, "targetPort": "metrics", "protocol": "TCP"})
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(name, settings),
            "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": name}, "ports": ports}}


def _autoscaler(name: str, settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": _metadata(name, settings),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": settings.min_replicas,
            "maxReplicas": settings.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": settings.cpu_target}}}],
        },
    }


def _inference_service(name: str, config_text: str, suffix: str, conf: Config,
                       settings: Settings) -> dict[str, Any]:
    """KServe's custom predictor: the container named ``kserve-container``, its ``PROTOCOL``
    variable saying ``v2`` (how KServe learns a custom predictor's protocol), one port, 8080.
    Knative (KServe's serverless mode) accepts only part of a pod spec (no pod
    ``securityContext`` or ``emptyDir`` by default; it sets the grace period itself): the
    container's own securityContext is kept, and the remote storage caches in the image's
    ``CORE_CACHE_DIR`` (``/var/cache/core``). Metrics are on the service's port (Knative allows
    one)."""
    env = [*_env(suffix, cache=False), {"name": "PROTOCOL", "value": "v2"}]
    if settings.storage_uri is not None:
        env.append({"name": "STORAGE_URI", "value": settings.storage_uri})
    container: dict[str, Any] = {
        "name": "kserve-container",
        "image": settings.image,
        "command": list(COMMAND),
        "args": _args(settings),
        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
        "env": env,
        **({"envFrom": [{"secretRef": {"name": secret}} for secret in settings.secrets]}
           if settings.secrets else {}),
        "resources": _resources(settings),
        **_probes(V2_PROBES, settings),
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        "securityContext": _container_security(),
    }
    predictor: dict[str, Any] = {
        # the pods' annotations: a changed config makes a new revision (new pods)
        "annotations": {CONFIG_HASH_ANNOTATION: _sha256(config_text)},
        "minReplicas": settings.min_replicas,
        "maxReplicas": settings.max_replicas,
        # on CPU as the Deployment's autoscaler; scaling to zero needs Knative's own metric
        # (requests in flight), as its CPU autoscaler (HPA) keeps at least one pod
        **({"scaleMetric": "cpu", "scaleTarget": settings.cpu_target} if settings.min_replicas else {}),
        **({"serviceAccountName": settings.service_account} if settings.service_account else {}),
        "enableServiceLinks": ENABLE_SERVICE_LINKS,
        "containers": [container],
        "volumes": [_config_volume(name)],
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": _metadata(name, settings),
        "spec": {"predictor": predictor},
    }
