"""The ``[ray]`` table of a config file: how many replicas, autoscaling, resources.

A config served on Ray is core's config plus one table, ``ray``, that this plugin takes out
before core reads the rest::

    name = "iris"
    storage_type = "disk"
    storage_kwargs = { path_to_files = "iris.onnx" }

    [ray]
    num_replicas = 2                          # or autoscaling_config = { min_replicas = 1, ... }
    ray_actor_options = { num_cpus = 1 }
    max_ongoing_requests = 32

Every key of the table is one of Ray Serve's deployment options (``serve.deployment(...)``,
passed as they are, validated by Ray), or one of this plugin's own (:data:`OWN_KEYS`). An
unknown key, in the table or in ``autoscaling_config``, is a :class:`core.errors.ConfigError`
that suggests the closest known key; a value Ray refuses is one line naming the key.
"""

from __future__ import annotations

import difflib
import inspect
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from core.config import Config, read_config_file
from core.errors import ConfigError

#: The name of the table.
SECTION = "ray"
#: Options of ``serve.deployment`` that core sets itself (or that make no sense for core).
_NOT_OPTIONS = {"_func_or_class", "name", "version", "user_config"}
#: This plugin's own keys: ``address`` (the Ray cluster ``core ray`` connects to; default: a
#: local Ray started for it), ``app_name`` (the Serve application; default: the model's
#: ``name``), ``route_prefix`` (default ``/``).
OWN_KEYS = ("address", "app_name", "route_prefix")


def deployment_options() -> list[str]:
    """The keys of ``[ray]`` passed to Ray Serve: ``serve.deployment``'s options."""
    from ray import serve

    return [name for name in inspect.signature(serve.deployment).parameters if name not in _NOT_OPTIONS]


@attrs.frozen
class RaySettings:
    """What the ``[ray]`` table says: Ray Serve's deployment options, and where to serve."""

    options: dict[str, Any] = attrs.field(factory=dict)
    address: str | None = None
    app_name: str | None = None
    route_prefix: str = "/"

    @property
    def replicas(self) -> str:
        """How many replicas, in words (for the start-up line)."""
        scaling = self.options.get("autoscaling_config")
        if scaling:
            return (f"{scaling.get('min_replicas', 1)} to {scaling.get('max_replicas', 1)} replicas "
                    "(autoscaling)")
        count = self.options.get("num_replicas", 1)
        return f"{count} replica{'' if count == 1 else 's'}"


def _closest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(known))}"


def _first_error(error: Exception) -> str:
    """One line of what Ray (often pydantic) said."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            return f"{where}: {first.get('msg')} (got {first.get('input')!r})"
        except Exception:  # not pydantic's shape after all
            pass
    return " ".join(str(error).split())


def parse_settings(table: Any, source: str = "config") -> RaySettings:
    """Check the ``[ray]`` table and build the settings.

    :raises ConfigError: one line naming the file and the key, for a key that is neither a
        deployment option nor one of :data:`OWN_KEYS` (with the closest one), an unknown key
        of ``autoscaling_config``, or a value Ray Serve refuses.
    """
    from ray import serve
    from ray.serve.config import AutoscalingConfig

    where = f"{source}: [{SECTION}]"
    if table is None:
        table = {}
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table of Ray Serve settings, got {type(table).__name__}")
    options_known = deployment_options()
    known = [*options_known, *OWN_KEYS]
    options: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}{_closest(key, known)}")
        if key in OWN_KEYS:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
            own[key] = value
        else:
            options[key] = value
    scaling = options.get("autoscaling_config")
    if isinstance(scaling, Mapping):
        fields = list(AutoscalingConfig.model_fields)
        for key in scaling:
            if key not in fields:
                raise ConfigError(f"{where}: autoscaling_config: unknown key {key!r}{_closest(key, fields)}")
    if own.get("route_prefix", "/")[:1] != "/":
        raise ConfigError(f"{where}: route_prefix must start with '/', got {own['route_prefix']!r}")
    try:
        serve.deployment(_Probe, **options)  # Ray's own checks of every option
    except Exception as error:
        raise ConfigError(f"{where}: {_first_error(error)}") from None
    return RaySettings(options=options, **own)


class _Probe:
    """A class for Ray to check the options against (never deployed)."""


def split_config(data: Mapping[str, Any], source: str = "config") -> tuple[Config, RaySettings]:
    """A config's mapping (a file's content) as core's :class:`~core.config.Config` and the
    :class:`RaySettings` of its ``[ray]`` table; the environment's ``CORE_<KEY>`` apply over
    the core part, as for ``core serve``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} must be a mapping of keys to values, got {type(data).__name__}")
    rest = {key: value for key, value in data.items() if key != SECTION}
    settings = parse_settings(data.get(SECTION), source)
    conf = Config.from_dict(rest, source=source).with_env()
    check_for_ray(conf, source)
    return conf, settings


def read_config(path: str | Path) -> tuple[Config, RaySettings]:
    """Read a config file (TOML, JSON, YAML) with its ``[ray]`` table."""
    return split_config(read_config_file(path), source=str(path))


def check_for_ray(conf: Config, source: str = "config") -> None:
    """Refuse what a config asks that replicas cannot do: ``metrics_port`` would be bound by
    every replica on one machine (use Ray's own metrics, or ``/metrics`` of each replica)."""
    if conf.metrics_port is not None:
        raise ConfigError(f"{source}: metrics_port is not served under Ray Serve (every replica would "
                          "bind it); remove it: /metrics answers on the service's port")


def shared_results(conf: Config) -> Config:
    """``conf`` with a directory for the ``local`` result store that every replica on this
    machine shares, when long predictions need one and none is set (a replica is not a
    worker process of one server, so the store would otherwise keep results in each replica's
    memory). The directory is new (``core-ray-results-*`` in the temporary directory)."""
    if not conf.is_long_predict or conf.result_store_type != "local":
        return conf
    if conf.result_store_kwargs.get("directory"):
        return conf
    directory = tempfile.mkdtemp(prefix="core-ray-results-")
    return conf.replace(result_store_kwargs={**conf.result_store_kwargs, "directory": directory})
