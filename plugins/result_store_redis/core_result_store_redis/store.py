"""The ``redis`` result store (:class:`RedisResultStore`).

One key per prediction, ``<prefix><predict id>``: ``P`` while it is pending, ``R`` followed by
the payload once it finished, each with its own expiry (``PX``, milliseconds), so Redis itself
forgets an expired result or a dead worker's marker.

* ``put_pending``: ``SET key P NX PX ttl`` (never over an answer);
* ``put``: a Lua script, atomic in Redis: refused when the key already holds an answer, else
  ``SET key R<payload> PX ttl`` over the marker. Two servers putting one id store one answer;
* ``get``: ``GET key``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import attrs
from core.components import ResultState, ResultStore
from core.errors import ConfigError

#: Where Redis is when ``url`` is not given: this machine's, database 0.
DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: What every key starts with; give each service its own when several share one Redis.
DEFAULT_PREFIX = "core:result:"

_PENDING, _READY = b"P", b"R"
#: Store the answer unless one is there: 1 stored, 0 refused.
_PUT_ONCE = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, 1) == 'R' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


def _milliseconds(ttl: float) -> int:
    return max(1, int(ttl * 1000))


def _where(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or parts.path or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path if parts.hostname else ''}"


def _valid_url(instance: Any, attribute: attrs.Attribute[Any], url: Any) -> None:
    from redis.connection import parse_url

    if not isinstance(url, str) or not url:
        raise ValueError(f"url must be a redis:// URL, got {url!r}")
    try:
        parse_url(url)
    except ValueError as error:
        raise ValueError(f"url {_where(url)!r}: {error}") from None


def _valid_prefix(instance: Any, attribute: attrs.Attribute[Any], prefix: Any) -> None:
    if not isinstance(prefix, str):
        raise ValueError(f"prefix must be a string, got {prefix!r}")


@attrs.define
class RedisResultStore(ResultStore):
    """Long predictions' answers in Redis, for every core server that uses the same Redis.

    :ivar url: the Redis to use (``redis://``, ``rediss://`` with TLS, ``unix://``; a
        password as ``redis://:password@host:6379/0``).
    :ivar prefix: the start of every key this store writes.
    """

    url: str = attrs.field(default=DEFAULT_URL, validator=_valid_url)
    prefix: str = attrs.field(default=DEFAULT_PREFIX, validator=_valid_prefix)
    _client: Any = attrs.field(default=None, init=False, repr=False)
    _put_once: Any = attrs.field(default=None, init=False, repr=False)

    def _connection(self) -> Any:
        """The client, made on first use (on the event loop that uses it)."""
        if self._client is None:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(self.url)
            self._put_once = self._client.register_script(_PUT_ONCE)
        return self._client

    async def start(self) -> None:
        """Connect, and check that Redis answers: a server that cannot reach it does not start."""
        import redis

        try:
            await self._connection().ping()
        except (redis.RedisError, OSError) as error:
            await self.close()
            raise ConfigError(f"result_store_type = 'redis': cannot reach {_where(self.url)} "
                              f"(result_store_kwargs.url): {error}") from None

    async def put_pending(self, predict_id: str, ttl: float) -> None:
        """``SET key P NX PX ttl``."""
        await self._connection().set(self.prefix + predict_id, _PENDING, nx=True,
                                     px=_milliseconds(ttl))

    async def put(self, predict_id: str, payload: bytes, ttl: float) -> bool:
        """The answer, once (see the module docstring)."""
        self._connection()
        stored = await self._put_once(keys=[self.prefix + predict_id],
                                      args=[_READY + bytes(payload), _milliseconds(ttl)])
        return bool(stored)

    async def get(self, predict_id: str) -> tuple[ResultState, bytes | None]:
        """``GET key``: ``R...`` ready, ``P`` pending, nothing missing."""
        held = await self._connection().get(self.prefix + predict_id)
        if held is None:
            return ResultState.MISSING, None
        if held[:1] == _READY:
            return ResultState.READY, bytes(held[1:])
        return ResultState.PENDING, None

    async def close(self) -> None:
        """Close the connections."""
        client, self._client, self._put_once = self._client, None, None
        if client is not None:
            await client.aclose()
