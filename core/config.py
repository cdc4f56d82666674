"""``Config``: every setting, its type and default; reading it from files and the environment.

Keys keep pymlup's names, so a pymlup config (flat, or in ``ml:``/``web:`` sections) loads
as it is, and pymlup's keys ``core`` does not use are accepted with a warning (see
:mod:`core.pymlup`), in a file, a dict or ``Config(**keys)`` alike. An unknown key or a value of
the wrong type is a :class:`core.errors.ConfigError` naming it, both when the config is built
and when a key is assigned later (``up.conf.port = "x"``).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import attrs
import orjson

from core import pymlup
from core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CONFIG_ENV = "CORE_CONFIG"
ENV_PREFIX = "CORE_"
#: ``CORE_*`` variables that are not config keys: the config file, the plugins to load, and
#: the model cache folder of storages that download (``core-storage-remote``).
RESERVED_ENV = {"CORE_CONFIG", "CORE_LOAD_PLUGINS", "CORE_CACHE_DIR"}
#: The variables Kubernetes gives every pod for each Service in its namespace (service links,
#: Docker's link format) when the Service's name starts with ``core``: ``CORE_SERVICE_HOST``,
#: ``CORE_SERVICE_PORT[_<NAME>]``, ``CORE_PORT_8009_TCP[_PROTO|_PORT|_ADDR]``, and for a
#: Service ``core-metrics`` ``CORE_METRICS_SERVICE_HOST``... They are not settings.
SERVICE_LINK_NAME = re.compile(
    r"CORE_(?:[A-Z0-9_]+_)?(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT_\d+_(?:TCP|UDP|SCTP)(?:_PROTO|_PORT|_ADDR)?)"
)
#: The value of a service link's ``<NAME>_PORT`` (``CORE_PORT=tcp://10.0.0.7:8009``): never a
#: port number, and never a setting.
SERVICE_LINK_VALUE = re.compile(r"(?:tcp|udp|sctp)://\S+:\d+")

logger = logging.getLogger("core")


def _typed(*types: type, optional: bool = False) -> Any:
    """An attrs validator that checks the value's type and names the key on failure."""
    names = " or ".join(t.__name__ for t in types) + (" or null" if optional else "")

    def check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and optional:
            return
        ok = isinstance(value, types)
        if isinstance(value, bool) and bool not in types:  # True is an int in Python
            ok = False
        if not ok:
            raise ConfigError(
                f"config key {attribute.name!r} must be {names}, got {type(value).__name__} "
                f"{value!r}"
            )

    return check


def _positive(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"config key {attribute.name!r} must be greater than 0, got {value!r}")


def _not_negative(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 0:
        raise ConfigError(f"config key {attribute.name!r} must be 0 or more, got {value!r}")


#: The level names ``log_level`` takes (any case): Python's own, as ``logging`` knows them.
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def _log_level(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    known = logging.getLevelName(value.upper()) if isinstance(value, str) else None
    if not isinstance(known, int) or value.upper() == "NOTSET":
        raise ConfigError(
            f"config key {attribute.name!r} must be one of {', '.join(LOG_LEVELS)} (any case), "
            f"got {value!r}"
        )


def _log_format(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    from core.logs import LOG_FORMATS

    if value not in LOG_FORMATS:
        raise ConfigError(
            f"config key {attribute.name!r} must be one of {', '.join(map(repr, LOG_FORMATS))}, got {value!r}"
        )


def _metrics_port(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not 1 <= value <= 65535:
        raise ConfigError(f"config key {attribute.name!r} must be a port from 1 to 65535, got {value!r}")
    if value == getattr(inst, "port", None):
        raise ConfigError(f"config key {attribute.name!r} is the service's own port ({value}); leave it "
                          "unset to answer /metrics there, or choose another port")
    if getattr(inst, "metrics", True) is False:
        raise ConfigError(f"config key {attribute.name!r} is set but metrics = false; remove one of them")


def _columns(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    from core.analysis import parse_columns

    parse_columns(value)  # raises ConfigError naming the bad column


def _for_long_predictions(default: Any) -> Any:
    """A validator for a key that only long predictions use: set without them, it is refused
    (it would be silently ignored)."""

    def check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value != default and getattr(inst, "is_long_predict", False) is False:
            raise ConfigError(f"config key {attribute.name!r} is set but is_long_predict = false: only "
                              "long predictions keep results in a store; set is_long_predict = true "
                              "or remove it")

    return check


def _setting(default: Any, *types: type, optional: bool = False, extra: Any = ()) -> Any:
    validators = [_typed(*types, optional=optional), *extra]
    if isinstance(default, (dict, list)):
        return attrs.field(factory=type(default), validator=validators)
    return attrs.field(default=default, validator=validators)


@attrs.define(kw_only=True, init=False)
class Config:
    """Every ``core`` setting. See the README's configuration reference for each key.

    ``Config(**keys)`` takes the keys by name; pymlup's enums (``StorageType.disk``) stand for
    their value, pymlup's keys that ``core`` does not use are logged and left out, and an
    unknown key is an error that suggests the closest one.
    """

    # -- model information
    name: str = _setting("model", str)
    version: str = _setting("1.0.0", str)

    # -- model interface
    columns: list[dict[str, Any]] | None = _setting(None, list, optional=True, extra=[_columns])
    predict_method_name: str = _setting("predict", str)
    auto_detect_predict_params: bool = _setting(True, bool)

    # -- loading
    storage_type: str = _setting("memory", str)
    storage_kwargs: dict[str, Any] = _setting({}, dict)
    binarization_type: str = _setting("auto", str)
    binarization_kwargs: dict[str, Any] = _setting({}, dict)

    # -- running the model
    use_thread_loop: bool = _setting(True, bool)
    max_thread_loop_workers: int | None = _setting(None, int, optional=True, extra=[_positive])
    max_inline_predict_ms: float = _setting(0.25, float, int, extra=[_not_negative])
    data_transformer_for_predict: str = _setting("numpy", str)
    data_transformer_for_predicted: str = _setting("numpy", str)
    dtype_for_predict: str | None = _setting(None, str, optional=True)

    # -- web app
    host: str = _setting("0.0.0.0", str)
    port: int = _setting(8009, int)
    mode: str = _setting("directly_to_predict", str)
    architecture_kwargs: dict[str, Any] = _setting({}, dict)
    show_docs: bool = _setting(True, bool)
    pymlup_wire_format: bool = _setting(False, bool)
    debug: bool = _setting(False, bool)
    throttling_max_requests: int | None = _setting(None, int, optional=True, extra=[_positive])
    throttling_max_request_len: int | None = _setting(None, int, optional=True, extra=[_positive])
    max_body_size: int = _setting(32 * 1024 * 1024, int, extra=[_positive])
    body_timeout: float = _setting(30.0, float, int, extra=[_positive])
    timeout_for_shutdown_daemon: float = _setting(3.0, float, int)
    drain_seconds: float = _setting(0.5, float, int, extra=[_not_negative])
    log_level: str = _setting("INFO", str, extra=[_log_level])

    # -- observability
    metrics: bool = _setting(True, bool)
    metrics_port: int | None = _setting(None, int, optional=True, extra=[_metrics_port])
    access_log: bool = _setting(True, bool)
    log_format: str = _setting("text", str, extra=[_log_format])

    # -- serving architectures (mode): worker_and_queue and batching
    max_queue_size: int = _setting(100, int, extra=[_positive])
    worker_count: int | None = _setting(None, int, optional=True, extra=[_positive])
    is_long_predict: bool = _setting(False, bool)
    ttl_predicted_data: float = _setting(60.0, float, int, extra=[_positive])
    ttl_client_wait: float = _setting(30.0, float, int, extra=[_positive])
    result_store_type: str = _setting("local", str, extra=[_for_long_predictions("local")])
    result_store_kwargs: dict[str, Any] = _setting({}, dict, extra=[_for_long_predictions({})])
    max_batch_size: int = _setting(64, int, extra=[_positive])
    max_batch_wait: float = _setting(0.0, float, int, extra=[_not_negative])
    predict_timeout: float | None = _setting(None, float, int, optional=True, extra=[_positive])
    max_stuck_predicts: int = _setting(0, int, extra=[_not_negative])

    # ------------------------------------------------------------------ building

    def __init__(self, **keys: Any) -> None:
        self.__attrs_init__(**_accepted(keys, "Config()"))

    def __getattr__(self, name: str) -> Any:
        """Only for names that are not settings: pymlup's unused keys say why they are absent."""
        raise pymlup.legacy_attribute_error("Config", name)

    @classmethod
    def keys(cls) -> list[str]:
        return [a.name for a in attrs.fields(cls)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> Config:
        """Build a config from a flat dict or from pymlup's ``ml``/``web`` sections."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source} must be a mapping of keys to values, got {type(data).__name__}")
        kwargs = _accepted(pymlup.flatten(data, source), source)
        try:
            return cls(**kwargs)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], format: str | None = None) -> Config:
        """Read a TOML, JSON or YAML file (YAML needs PyYAML), by its extension or ``format``
        (``"toml"``, ``"json"``, ``"yaml"``)."""
        return cls.from_dict(read_config_file(path, format), source=str(path))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """The file named by ``CORE_CONFIG`` (if any), then ``CORE_<KEY>`` overrides."""
        environ = os.environ if environ is None else environ
        path = environ.get(CONFIG_ENV)
        conf = cls.from_file(path) if path else cls()
        return conf.with_env(environ)

    def with_env(self, environ: Mapping[str, str] | None = None) -> Config:
        """This config with the environment's ``CORE_<KEY>`` settings over it; a bad value is
        an error naming its variable."""
        conf = self
        for key, value in env_overrides(os.environ if environ is None else environ).items():
            conf = Config.from_dict({**conf.to_flat_dict(), key: value},
                                    source=f"environment variable {ENV_PREFIX}{key.upper()}")
        return conf

    # ------------------------------------------------------------------ writing

    def to_flat_dict(self) -> dict[str, Any]:
        """Every key at one level, ``core``'s own shape (what :meth:`from_dict`, the TOML file and
        the ``CORE_<KEY>`` environment use)."""
        return attrs.asdict(self, recurse=False)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """pymlup's shape, as its ``UP.to_dict()`` returns it: ``{"ml": {...}, "web": {...}}``
        (model keys under ``ml``, the rest under ``web``). :meth:`from_dict` reads it back."""
        return pymlup.nest(self.to_flat_dict())

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The config as JSON in pymlup's file shape (``version``, ``ml``, ``web``); written to
        ``path`` when given."""
        text = orjson.dumps(pymlup.file_shape(self.to_flat_dict()), option=orjson.OPT_INDENT_2).decode()
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """The config as YAML in pymlup's file shape (needs PyYAML: ``pip install 'core[yaml]'``)."""
        try:
            import yaml
        except ImportError:
            raise ConfigError(
                "writing YAML needs PyYAML (pip install 'core[yaml]'); or use to_json / to_toml"
            ) from None
        text = yaml.safe_dump(pymlup.file_shape(self.to_flat_dict()), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_toml(self, path: str | os.PathLike[str] | None = None) -> str:
        """The config as TOML, flat (``core``'s own format; TOML has no null, so unset keys are
        left out)."""
        import tomli_w

        data = {k: v for k, v in pymlup.plain(self.to_flat_dict()).items() if v is not None}
        text = tomli_w.dumps(data)
        if path is not None:
            Path(path).write_text(text)
        return text

    def replace(self, **changes: Any) -> Config:
        return Config.from_dict({**self.to_flat_dict(), **changes})


def _accepted(keys: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``keys`` ready for the attrs constructor: pymlup's unused keys logged and left out,
    enums as their value, an unknown key refused with the closest known one."""
    known = set(Config.keys())
    accepted = {}
    for key, value in pymlup.pop_legacy_keys(dict(keys), source).items():
        if key not in known:
            if _plugin_section(key):  # a plugin's table (register_config_sections): it reads it
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{source}: {key!r} must be a table (a mapping of keys to values), "
                                      f"got {type(value).__name__}")
                continue
            raise ConfigError(_unknown_key(key, source))
        accepted[key] = pymlup.enum_value(value)
    return accepted


#: Config-file tables that plugins of this repository read, and the distribution that reads
#: each: a table whose plugin is missing is one line naming it (core imports no plugin).
PLUGIN_SECTIONS = {"ray": "core-serve-ray"}


#: Which config-file tables installed plugins claim (:func:`core.hookspecs.register_config_sections`),
#: as a function asked the first time a config holds a key core does not know. The config sits
#: below the plugin manager, so :mod:`core.plugins` sets it when it is imported (``import
#: core`` imports it); until then no table is claimed.
claimed_sections: Callable[[], Collection[str]] = tuple


def _plugin_section(key: str) -> bool:
    """Whether an installed plugin reads the config table ``key``."""
    return key in claimed_sections()


def _unknown_key(key: str, source: str) -> str:
    if key in PLUGIN_SECTIONS:
        return (f"{source}: the config table {key!r} is read by {PLUGIN_SECTIONS[key]}, which is not "
                f"installed: pip install {PLUGIN_SECTIONS[key]}")
    close = difflib.get_close_matches(key, Config.keys(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; see the configuration reference"
    return f"{source}: unknown config key {key!r}{hint}"


def read_config_file(path: str | os.PathLike[str], format: str | None = None) -> dict[str, Any]:
    """Parse a config file by its extension: .toml, .json, .yaml/.yml (UTF-8 text); or as
    ``format`` says whatever its name (pymlup's ``load_from_yaml`` reads any file as YAML).

    :raises ConfigError: one line naming the file, for a missing, unreadable, binary or
        invalid file and for an unknown extension.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file not found: {file}")
    suffix = f".{format.lower()}" if format else file.suffix.lower()
    if suffix not in (".toml", ".json", ".yaml", ".yml"):
        raise ConfigError(f"{file}: unknown config format {suffix!r}; use .toml, .json or .yaml")
    text = _read_text(file)
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            data = json.loads(text)
        else:
            try:
                import yaml
            except ImportError:
                raise ConfigError(
                    f"{file}: YAML configs need PyYAML (pip install 'core[yaml]'), "
                    "or use TOML or JSON"
                ) from None
            data = yaml.safe_load(text)
    except ConfigError:
        raise
    except Exception as error:  # each parser has its own error class
        message = " ".join(str(error).split())  # YAML's errors span several lines
        raise ConfigError(f"{file}: not valid {suffix[1:].upper()}: {message}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: a config must be a mapping at the top level")
    return data


def _read_text(file: Path) -> str:
    """The file as UTF-8 text; a binary file (a model named as the config...) is a ConfigError."""
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise ConfigError(f"{file}: cannot read the config file: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{file}: not a text file (byte {error.start} is not UTF-8); a config is TOML, "
            "JSON or YAML text"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"{file}: not a text file (it holds NUL bytes); a config is TOML, JSON "
                          "or YAML text")
    return text


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``CORE_PORT=8010`` -> ``{"port": 8010}``; dicts and lists are written as JSON."""
    fields = {a.name: a for a in attrs.fields(Config)}
    result: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV or SERVICE_LINK_NAME.fullmatch(name):
            continue
        if name.endswith("_PORT") and SERVICE_LINK_VALUE.fullmatch(raw.strip()):
            logger.warning("core: ignoring %s=%s: a Kubernetes service link (a Service named %s), "
                           "not a setting; set enableServiceLinks: false in the pod spec, or name the "
                           "Service otherwise", name, raw.strip(), name[:-len("_PORT")].lower().replace("_", "-"))
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in fields:
            raise ConfigError(_unknown_key(key, f"environment variable {name}"))
        result[key] = _parse_env(name, raw, fields[key].default)
    return result


def _parse_env(name: str, raw: str, default: Any) -> Any:
    """A string key takes the text as it is; any other is read as JSON (``8010``, ``true``,
    ``{"a": 1}``), and text that is not JSON is left for the type check to name."""
    if isinstance(default, str):
        return raw
    text = raw.strip()
    if text.lower() in ("", "null", "none"):
        return None
    try:
        return json.loads(text.lower() if text.lower() in ("true", "false") else text)
    except ValueError:
        return raw
