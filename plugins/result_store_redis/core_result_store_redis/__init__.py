"""core-result-store-redis: the ``redis`` result store, long predictions' results shared by
core servers on several machines through one Redis.

Registered under the name ``redis`` through the ``core`` entry-point group::

    mode = "worker_and_queue"
    is_long_predict = true
    result_store_type = "redis"
    result_store_kwargs = { url = "redis://redis.internal:6379/0" }
"""

from __future__ import annotations

from core.hookspecs import Register, hookimpl

from core_result_store_redis.store import DEFAULT_PREFIX, DEFAULT_URL, RedisResultStore

__version__ = "0.1.0"

__all__ = ["DEFAULT_PREFIX", "DEFAULT_URL", "RedisResultStore", "__version__",
           "register_result_stores"]


@hookimpl
def register_result_stores(register: Register) -> None:
    """Register :class:`RedisResultStore` as ``redis``."""
    register("redis", RedisResultStore)
