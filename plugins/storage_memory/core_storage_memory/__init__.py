"""core-storage-memory: the ``memory`` storage, a model object that is already in memory.

Registered under the name ``memory`` through the ``core`` entry-point group. ``UP(ml_model=obj)``
uses it (``memory`` is the default ``storage_type``); a config file names an importable
object instead::

    storage_type = "memory"
    storage_kwargs = { object = "my_service.models:model" }
"""

from __future__ import annotations

from core.hookspecs import Register, hookimpl

from core_storage_memory.storage import MemoryStorage

__version__ = "0.1.0"

__all__ = ["MemoryStorage", "__version__", "register_storages"]


@hookimpl
def register_storages(register: Register) -> None:
    register("memory", MemoryStorage)
