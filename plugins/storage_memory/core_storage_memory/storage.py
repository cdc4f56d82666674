"""``MemoryStorage``: a model object that is already in memory, or importable by name."""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import attrs
from core.components import LoadedFile, Storage
from core.errors import ConfigError


def _check_spec(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.strip(":.") or value.count(":") > 1:
        raise ConfigError(
            f"memory storage: storage_kwargs.object must be 'package.module:attribute', "
            f"got {type(value).__name__} {value!r}"
        )


@attrs.define(kw_only=True)
class MemoryStorage(Storage):
    """A model object in memory: the binarizer step is skipped.

    :param model: the object itself. ``UP(ml_model=obj)`` passes it here.
    :param object: where to import it from, ``"package.module:attribute"`` (the attribute
        may be dotted, ``"pkg.mod:registry.model"``; ``"package.module.attribute"`` works
        too). This is how a config file serves a Python object.
    """

    hands_over_objects: ClassVar[bool] = True  # a model object, no binarizer

    model: Any = attrs.field(default=None, repr=False)
    object: str | None = attrs.field(default=None, validator=_check_spec)

    def __attrs_post_init__(self) -> None:
        if self.model is None and self.object is None:
            raise ConfigError(
                "memory storage: no model; pass the object as UP(ml_model=...), or set "
                "storage_kwargs.object = 'package.module:attribute' to import it"
            )
        if self.model is not None and self.object is not None:
            raise ConfigError(
                f"memory storage: given both a model object (ml_model=) and "
                f"storage_kwargs.object = {self.object!r}; keep one"
            )

    def load(self) -> list[LoadedFile]:
        model = self.model if self.model is not None else self._import()
        return [LoadedFile(obj=model, name=type(model).__name__)]

    def check(self) -> None:
        """Import ``object`` (when set), so that ``core validate`` reports a bad name."""
        if self.model is None:
            self._import()

    def _import(self) -> Any:
        spec = self.object
        assert spec is not None
        if ":" in spec:
            module_name, _, attribute = spec.partition(":")
        else:
            module_name, _, attribute = spec.rpartition(".")
        where = f"memory storage: storage_kwargs.object = {spec!r}"
        if not module_name or not attribute:
            raise ConfigError(f"{where}: write it as 'package.module:attribute'")
        try:
            found: Any = importlib.import_module(module_name)
        except ImportError as error:
            raise ConfigError(f"{where}: cannot import module {module_name!r} ({error})") from None
        except Exception as error:
            raise ConfigError(
                f"{where}: importing module {module_name!r} raised {type(error).__name__}: {error}"
            ) from error
        path = module_name
        for part in attribute.split("."):
            if not hasattr(found, part):
                raise ConfigError(f"{where}: {path!r} has no attribute {part!r}")
            found = getattr(found, part)
            path = f"{path}.{part}"
        if isinstance(found, type):
            raise ConfigError(
                f"{where} is a class, not a model object; create the model in the module "
                f"(model = {found.__name__}(...)) and name that"
            )
        if found is None:
            raise ConfigError(f"{where} is None")
        return found
