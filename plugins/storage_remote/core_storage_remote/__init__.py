"""core-storage-remote: the ``remote`` storage, a model file from any URL fsspec reads.

Registered under the name ``remote`` through the ``core`` entry-point group::

    storage_type = "remote"
    storage_kwargs = { path_to_files = "s3://models/iris/", file_mask = 'iris\\.onnx$' }

The file is downloaded once into a local cache (``$CORE_CACHE_DIR`` or
``~/.cache/core/models``) and downloaded again only when its remote version changes.
"""

from __future__ import annotations

from core.hookspecs import Register, hookimpl

from core_storage_remote.storage import DEFAULT_FILE_MASK, RemoteStorage, default_cache_dir

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_FILE_MASK",
    "RemoteStorage",
    "__version__",
    "default_cache_dir",
    "register_storages",
]


@hookimpl
def register_storages(register: Register) -> None:
    """Register :class:`RemoteStorage` as the storage ``remote``."""
    register("remote", RemoteStorage)
