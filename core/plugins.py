"""The plugin manager: hookspecs, built-in plugins, entry points, and the name registries.

``load_plugins()`` builds it in one place, the way pluggy's example host does:

1. add the specs in :mod:`core.hookspecs`;
2. register the built-in plugin (:mod:`core.builtin`: built-in behaviour is a plugin too);
3. load the entry-point group ``core`` (every installed plugin distribution), limited by the
   environment variable ``CORE_LOAD_PLUGINS`` (a comma-separated list of plugin or
   distribution names; empty loads none);
4. ``check_pending()``, so a misspelt hook fails at start-up;
5. call the ``register_*`` hooks one plugin at a time, so that every name is attributed to
   the distribution that registered it and a clash names both.
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import attrs
import importlib_metadata
import pluggy

from core import config, hookspecs, pymlup
from core.components import Architecture, Binarizer, ResultStore, Storage, Transformer
from core.errors import ConfigError, PluginError

ENTRY_POINT_GROUP = hookspecs.PROJECT
LOAD_PLUGINS_ENV = "CORE_LOAD_PLUGINS"
#: The name core's own plugin (:mod:`core.builtin`) is registered under.
BUILTIN_PLUGIN = "core.builtin"

T = TypeVar("T")

#: The distribution that provides each name registered by this repository's plugins, for the
#: error when one is not installed.
DISTRIBUTIONS: dict[str, dict[str, str]] = {
    "storage": {"disk": "core-storage-disk", "memory": "core-storage-memory",
                "remote": "core-storage-remote"},
    "binarizer": {"pickle": "core-binarizer-pickle", "onnx": "core-binarizer-onnx",
                  "lightgbm": "core-binarizer-lightgbm", "xgboost": "core-binarizer-xgboost",
                  "torch": "core-binarizer-torch", "torchscript": "core-binarizer-torch",
                  "tensorflow": "core-binarizer-tensorflow"},
    "transformer": {"pandas": "core-transformer-pandas", "torch_tensor": "core-binarizer-torch",
                    "tf_tensor": "core-binarizer-tensorflow"},
    "result store": {"redis": "core-result-store-redis"},
}


@attrs.define
class Registration:
    """One name in a registry and who provided it.

    :ivar target: the class, or where it is (``"package.module:Class"``) for a plugin that
        registers lazily, so that a heavy library (pandas, torch) is imported only when the
        config names the component, not by every ``core`` command.
    """

    name: str
    target: type | str
    plugin: str
    distribution: str | None
    base: type = object

    @property
    def cls(self) -> type:
        """The class (imported now when registered by path; checked against the kind's base)."""
        if isinstance(self.target, str):
            module_name, _, attr = self.target.replace(":", ".").rpartition(".")
            try:
                cls = getattr(importlib.import_module(module_name), attr)
            except Exception as error:
                raise PluginError(
                    f"plugin {self.plugin!r} registered {self.name!r} as {self.target!r}, which "
                    f"cannot be imported: {type(error).__name__}: {error}"
                ) from error
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise PluginError(f"plugin {self.plugin!r} registered {self.name!r} as "
                                  f"{self.target!r}, which is not a subclass of core.{self.base.__name__}")
            self.target = cls
        return self.target


@attrs.frozen
class PluginInfo:
    """A loaded plugin, as listed by ``core plugins`` and ``/info``."""

    name: str
    distribution: str | None
    version: str | None
    provides: dict[str, list[str]]
    hooks: list[str]

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Registry(Generic[T]):
    """Named components of one kind (storage, binarizer, transformer, architecture, result
    store)."""

    def __init__(self, kind: str, base: type[T], config_key: str) -> None:
        self.kind = kind
        self.base = base
        self.config_key = config_key
        self.entries: dict[str, Registration] = {}

    def add(self, name: str, cls: type | str, plugin: str, distribution: str | None) -> None:
        """Register ``cls`` (or its ``"module:Class"`` path, imported on first use) as ``name``."""
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind} with no name")
        if isinstance(cls, str) and ":" in cls:
            pass  # a lazy registration: checked when it is first used
        elif not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise PluginError(
                f"plugin {plugin!r} registered {self.kind} {name!r} as {cls!r}, "
                f"which is not a subclass of core.{self.base.__name__}"
            )
        if name in self.entries:
            first = self.entries[name]
            raise PluginError(
                f"two plugins claim the {self.kind} name {name!r}: "
                f"{_who(first.plugin, first.distribution)} and {_who(plugin, distribution)}; "
                f"uninstall one, or limit {LOAD_PLUGINS_ENV}"
            )
        self.entries[name] = Registration(name, cls, plugin, distribution, self.base)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str) -> type[T]:
        """The class for ``name``: a registered name, a pymlup class path (see
        :mod:`core.pymlup`), or a dotted path."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{self.config_key} must be a non-empty string, got {name!r}")
        given, name = name, pymlup.resolve_class_path(self.kind, name, self.config_key)
        if name in self.entries:
            return self.entries[name].cls
        if "." in name or ":" in name:
            return self._import(name)
        installed = ", ".join(self.names()) or "none"
        alias = f" (pymlup's {given})" if given != name else ""
        known = DISTRIBUTIONS.get(self.kind, {})
        if name in known:
            hint = f"; pip install {known[name]}"
        elif known and not self.entries:
            hint = f" (pip install {' / '.join(dict.fromkeys(known.values()))})"
        else:
            hint = ""
        raise ConfigError(
            f"unknown {self.kind} {name!r}{alias} in {self.config_key}; installed: {installed}{hint}; "
            f"or give a dotted path to a core.{self.base.__name__} subclass"
        )

    def _import(self, path: str) -> type[T]:
        module_name, _, attr = path.replace(":", ".").rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ConfigError(
                f"{self.config_key} = {path!r}: cannot import module {module_name!r} ({error})"
            ) from None
        cls = getattr(module, attr, None)
        if cls is None:
            raise ConfigError(f"{self.config_key} = {path!r}: module {module_name!r} has no {attr!r}")
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise ConfigError(
                f"{self.config_key} = {path!r} is not a subclass of core.{self.base.__name__}"
            )
        return cls


def _who(plugin: str, distribution: str | None) -> str:
    return f"plugin {plugin!r} (distribution {distribution})" if distribution else f"plugin {plugin!r}"


class Plugins:
    """The loaded plugins: the pluggy manager, its hook caller and the five registries."""

    def __init__(self, pm: pluggy.PluginManager, distributions: dict[str, tuple[str, str]]) -> None:
        self.pm = pm
        self.hook = pm.hook
        self._distributions = distributions  # plugin name -> (distribution, version)
        self.storages: Registry[Storage] = Registry("storage", Storage, "storage_type")
        self.binarizers: Registry[Binarizer] = Registry(
            "binarizer", Binarizer, "binarization_type"
        )
        self.transformers: Registry[Transformer] = Registry(
            "transformer", Transformer, "data_transformer_for_predict"
        )
        self.architectures: Registry[Architecture] = Registry("architecture", Architecture, "mode")
        self.result_stores: Registry[ResultStore] = Registry(
            "result store", ResultStore, "result_store_type"
        )
        self._fill_registries()
        self._sections: dict[str, str] | None = None

    def config_sections(self) -> dict[str, str]:
        """The config-file tables plugins read (:func:`core.hookspecs.register_config_sections`),
        each with the plugin that claimed it (as :meth:`describe` names it)."""
        if self._sections is None:
            keys = set(config.Config.keys())
            sections: dict[str, str] = {}
            for impl in reversed(self.hook.register_config_sections.get_hookimpls()):
                who = self.describe(impl.plugin_name)
                names: list[str] = impl.function() or []  # type: ignore[assignment]
                for name in names:
                    if name in sections or name in keys:
                        owner = sections.get(name, "core (a config key)")
                        raise PluginError(f"{who} claims the config table {name!r}, which {owner} "
                                          "already has; uninstall one of them")
                    sections[name] = who
            self._sections = sections
        return self._sections

    def describe(self, plugin_name: str) -> str:
        """``plugin 'name' (distribution dist)`` (without a distribution: one registered in code),
        for messages."""
        return _who(plugin_name, self._distributions.get(plugin_name, (None, None))[0])

    def overridden(self, hook_name: str) -> bool:
        """Whether a plugin other than ``core.builtin`` implements or wraps ``hook_name``.

        While none does, the request path may call the chosen component's method directly:
        the hook would answer with ``core.builtin``'s default, which calls that method.
        """
        impls = getattr(self.hook, hook_name).get_hookimpls()
        return any(impl.plugin_name != BUILTIN_PLUGIN for impl in impls)

    def request_path_call(self, hook_name: str, component_name: str, component: Any,
                          method: Callable[..., Any], *argument_names: str) -> Callable[..., Any]:
        """A life-cycle hook as a plain callable for the request path, taking the hook's other
        arguments (``argument_names``) by position.

        While no plugin but ``core.builtin`` implements the hook, that is ``method``, the
        component's own (the hook would answer with it, minus a dispatch per request);
        otherwise it calls the hook with ``component_name=component``.
        """
        if not self.overridden(hook_name):
            return method
        hook = getattr(self.hook, hook_name)

        def call(*args: Any) -> Any:
            return hook(**{component_name: component}, **dict(zip(argument_names, args)))

        return call

    def _registries(self) -> dict[str, Registry[Any]]:
        return {
            "register_storages": self.storages,
            "register_binarizers": self.binarizers,
            "register_transformers": self.transformers,
            "register_architectures": self.architectures,
            "register_result_stores": self.result_stores,
        }

    def _fill_registries(self) -> None:
        for hook_name, registry in self._registries().items():
            caller = getattr(self.hook, hook_name)
            for impl in reversed(caller.get_hookimpls()):  # registration order
                plugin_name = impl.plugin_name
                distribution = self._distributions.get(plugin_name, (None, None))[0]

                def register(
                    name: str,
                    cls: type,
                    _registry: Registry[Any] = registry,
                    _plugin: str = plugin_name,
                    _dist: str | None = distribution,
                ) -> None:
                    _registry.add(name, cls, _plugin, _dist)

                try:
                    impl.function(register=register)
                except PluginError:
                    raise
                except Exception as error:
                    raise PluginError(
                        f"plugin {plugin_name!r} failed in {hook_name}: {error}\n"
                        + traceback.format_exc()
                    ) from error

    def info(self) -> list[PluginInfo]:
        """Every loaded plugin with its distribution, version, names and hooks."""
        provides: dict[str, dict[str, list[str]]] = {}
        for registry in self._registries().values():
            for entry in registry.entries.values():
                provides.setdefault(entry.plugin, {}).setdefault(registry.kind, []).append(
                    entry.name
                )
        result = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist, version = self._distributions.get(name, (None, None))
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            result.append(PluginInfo(name, dist, version, provides.get(name, {}), hooks))
        return result


def _selected(env_value: str | None) -> set[str] | None:
    if env_value is None:
        return None
    return {part.strip() for part in env_value.split(",") if part.strip()}


def load_plugins(
    extra: Iterable[object] = (),
    *,
    entry_points: bool = True,
    only: str | None = None,
) -> Plugins:
    """Build the plugin manager (see the module docstring for the order).

    :param extra: more plugin objects (modules or instances) to register, for tests and
        embedding applications.
    :param entry_points: load the installed plugin distributions.
    :param only: like ``CORE_LOAD_PLUGINS``; defaults to that variable.
    """
    from core import builtin

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name=BUILTIN_PLUGIN)
    distributions: dict[str, tuple[str, str]] = {}

    if entry_points:
        wanted = _selected(only if only is not None else os.environ.get(LOAD_PLUGINS_ENV))
        seen = set()
        for ep in sorted(
            importlib_metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
        ):
            dist = ep.dist
            dist_name = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else None
            if wanted is not None and ep.name not in wanted and dist_name not in wanted:
                continue
            if (ep.name, dist_name) in seen:  # the same distribution seen on two paths
                continue
            seen.add((ep.name, dist_name))
            if pm.has_plugin(ep.name):
                other = distributions.get(ep.name, ("?", "?"))[0]
                raise PluginError(
                    f"two distributions register the plugin name {ep.name!r}: "
                    f"{other} and {dist_name}; uninstall one"
                )
            try:
                plugin = ep.load()
            except Exception as error:
                raise PluginError(
                    f"plugin {ep.name!r} (distribution {dist_name} {version}) failed to import "
                    f"{ep.value!r}: {type(error).__name__}: {error}\n"
                    f"Set {LOAD_PLUGINS_ENV} to the plugins you want, to start without it.\n"
                    f"Original traceback:\n{traceback.format_exc()}"
                ) from error
            pm.register(plugin, name=ep.name)
            if dist_name is not None:
                distributions[ep.name] = (dist_name, version or "?")

    for plugin in extra:
        pm.register(plugin)

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as error:
        raise PluginError(f"a plugin implements an unknown hook: {error}") from error
    return Plugins(pm, distributions)


_default: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide plugins, built on first use."""
    global _default
    if _default is None:
        _default = load_plugins()
    return _default


def reset_plugins() -> None:
    """Forget the process-wide plugins (tests; after installing a plugin at run time)."""
    global _default
    _default = None


# Config asks the loaded plugins which tables of a config file they claim (it sits below this
# module and cannot import it).
config.claimed_sections = lambda: get_plugins().config_sections()
