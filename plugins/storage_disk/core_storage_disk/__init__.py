"""core-storage-disk: the ``disk`` storage, the model file on the local disk.

Registered under the name ``disk`` through the ``core`` entry-point group::

    storage_type = "disk"
    storage_kwargs = { path_to_files = "models/", file_mask = 'iris\\.pkl$' }
"""

from __future__ import annotations

from core.hookspecs import Register, hookimpl

from core_storage_disk.storage import DEFAULT_FILE_MASK, DiskStorage

__version__ = "0.1.0"

__all__ = ["DEFAULT_FILE_MASK", "DiskStorage", "__version__", "register_storages"]


@hookimpl
def register_storages(register: Register) -> None:
    register("disk", DiskStorage)
