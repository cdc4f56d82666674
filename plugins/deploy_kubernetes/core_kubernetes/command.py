"""``core manifests CONFIG --image IMAGE ...``: the command line, and the YAML it writes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from core.config import Config
from core.errors import ConfigError
from core_kubernetes.manifests import Settings, manifests, object_name

CONFIG_SUFFIXES = (".toml", ".json", ".yaml", ".yml")


def add_command(commands: Any) -> None:
    """Add ``manifests`` to ``commands`` (what ``add_subparsers()`` returned)."""
    command: argparse.ArgumentParser = commands.add_parser(
        "manifests", help="write Kubernetes (or KServe) manifests that serve a config",
        description="Write the manifests that run `core serve` with CONFIG in a cluster: a ConfigMap "
        "holding the config file, and a Deployment (probes, resources, graceful shutdown), a Service "
        "and a HorizontalPodAutoscaler; or, with --kserve, a KServe InferenceService (V2 protocol). "
        "The image is built from deploy/Dockerfile.")
    command.add_argument("config", metavar="CONFIG", help="the config file (.toml, .json, .yaml) to serve")
    command.add_argument("--image", required=True, help="the image built from deploy/Dockerfile")
    command.add_argument("--out", metavar="DIR", type=Path,
                         help="write DIR/<name>.yaml (default: print to stdout)")
    command.add_argument("--name", help="the objects' name (default: the config's name)")
    command.add_argument("--namespace", help="the objects' namespace (default: kubectl's current one)")
    scaling = command.add_argument_group("scaling")
    scaling.add_argument("--replicas", type=_count("--replicas"), metavar="N",
                         help="a fixed number of pods, without an autoscaler")
    scaling.add_argument("--min", dest="min_replicas", type=_count("--min", least=0), metavar="N",
                         help="the autoscaler's least number of pods (default 1; 0 with --kserve: "
                         "scale to zero)")
    scaling.add_argument("--max", dest="max_replicas", type=_count("--max"), metavar="N",
                         help="the autoscaler's most (default 4)")
    scaling.add_argument("--cpu-target", type=_count("--cpu-target"), metavar="PERCENT",
                         help="the average CPU use the autoscaler aims at, in percent of --cpu (default 70)")
    scaling.add_argument("--workers", type=_count("--workers"), metavar="N",
                         help="core serve --workers N: N processes in each pod, each with its own model")
    pod = command.add_argument_group("pods")
    pod.add_argument("--cpu", default="1", help="CPU request and limit of each pod (default 1)")
    pod.add_argument("--memory", default="1Gi", help="memory request and limit of each pod (default 1Gi)")
    pod.add_argument("--startup-seconds", type=_count("--startup-seconds"), metavar="SECONDS", default=600,
                     help="how long the model may take to load (or download) before the pod is "
                     "restarted (default 600)")
    pod.add_argument("--secret", dest="secrets", action="append", default=[], metavar="NAME",
                     help="a Secret whose keys become environment variables (storage credentials: "
                     "AWS_ACCESS_KEY_ID...); repeat for several")
    pod.add_argument("--service-account", help="the pods' ServiceAccount (cloud workload identity)")
    kserve = command.add_argument_group("KServe")
    kserve.add_argument("--kserve", action="store_true",
                        help="a KServe InferenceService (custom predictor, V2 protocol: install "
                        "core-protocol-v2 in the image) instead of Deployment, Service and autoscaler")
    kserve.add_argument("--storage-uri", metavar="URI",
                        help="with --kserve: a model KServe's storage initializer downloads to /mnt/models")
    command.set_defaults(func=run)


def _count(option: str, least: int = 1) -> Callable[[str], int]:
    """An argparse type: a whole number of ``least`` or more; anything else is one line naming
    ``option`` (a ConfigError goes through argparse, to ``core``'s one-line report)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{option} {text!r}: must be a whole number") from None
        if value < least:
            raise ConfigError(f"{option} {value}: must be {least} or more")
        return value

    return parse


def run(args: argparse.Namespace) -> int:
    """Read the config, build the objects, write them."""
    path = Path(args.config)
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise ConfigError(f"{path}: not a config file (.toml, .json, .yaml or .yml); the manifests "
                          "carry a config file in a ConfigMap")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot be read as a config file ({error})") from None
    conf = Config.from_file(path)  # a mistake in the config is one line now, not in the cluster
    autoscaler = {"--min": args.min_replicas, "--max": args.max_replicas, "--cpu-target": args.cpu_target}
    given = [option for option, value in autoscaler.items() if value is not None]
    if args.replicas is not None and given:
        raise ConfigError(f"--replicas fixes the number of pods; {' and '.join(given)} set the autoscaler: "
                          "give one or the other")
    if args.min_replicas == 0 and args.cpu_target is not None:
        raise ConfigError("--min 0 scales to zero on KServe's own metric (requests in flight), not on "
                          "CPU: drop --cpu-target")
    defaults = Settings(image=args.image)
    settings = Settings(
        image=args.image, name=args.name, namespace=args.namespace, replicas=args.replicas,
        min_replicas=defaults.min_replicas if args.min_replicas is None else args.min_replicas,
        max_replicas=args.max_replicas or defaults.max_replicas,
        cpu_target=args.cpu_target or defaults.cpu_target,
        cpu=args.cpu, memory=args.memory, workers=args.workers, startup_seconds=args.startup_seconds,
        secrets=tuple(args.secrets), service_account=args.service_account, kserve=args.kserve,
        storage_uri=args.storage_uri,
    )
    documents = dump(manifests(text, path.suffix.lower(), conf, settings))
    if args.out is None:
        sys.stdout.write(documents)
        return 0
    out = args.out / f"{object_name(conf, settings)}.yaml"
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        out.write_text(documents, encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"--out {args.out}: cannot write {out.name} ({error.strerror or error})") from None
    print(f"wrote {out}; apply it with: kubectl apply -f {out}")
    return 0


class _Dumper(yaml.SafeDumper):
    """Block style; a multi-line string (the config file) as a literal block (``|``)."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _string)


def dump(objects: list[dict[str, Any]]) -> str:
    """The objects as one YAML stream, ``---`` between them."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                         explicit_start=True, allow_unicode=True)
