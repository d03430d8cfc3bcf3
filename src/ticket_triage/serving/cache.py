"""Prediction cache: in-process (TTL + LRU) or Redis behind a circuit breaker.

The cache only ever saves work, so it must never fail a request: every Redis problem (down, slow,
breaker open, a corrupt stored value) turns into "not cached" here and shows up in the metrics instead.
Both backends keep values as JSON text, so a caller gets the same shapes (and its own fresh copy) from
either one, and a value that cannot be JSON is never stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cachetools
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ticket_triage.serving.breaker import CLOSED, AsyncCircuitBreaker, BreakerOpen

if TYPE_CHECKING:
    from ticket_triage.config import Settings
    from ticket_triage.monitoring.metrics import ServiceMetrics

log = logging.getLogger(__name__)

#: Bump when the stored value's layout changes, so old entries are simply never read again.
KEY_PREFIX = "triage:v1"


def cache_key(model_version: str, fields: Mapping[str, object]) -> str:
    """Key of one prediction: the model version plus a digest of the canonical JSON of its inputs."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{KEY_PREFIX}:{model_version}:{digest}"


class PredictionCache(Protocol):
    backend: str

    async def get_many(self, keys: Sequence[str]) -> list[dict[str, Any] | None]: ...

    async def set_many(self, items: Mapping[str, dict[str, Any]]) -> None: ...

    def status(self) -> dict[str, Any]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def _encode(value: dict[str, Any]) -> str:
    """Strict JSON (no NaN/Infinity), so any JSON reader can read what we store."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _decode(raw: str | bytes) -> dict[str, Any] | None:
    """The stored object, or None when the value is not a JSON object (treated as a miss)."""
    try:
        value = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None
    return value if isinstance(value, dict) else None


class _Counting:
    """Lookup and error counters shared by both backends (no-ops without metrics)."""

    backend: str
    _metrics: ServiceMetrics | None

    def _count_lookups(self, result: str, n: int = 1) -> None:
        if self._metrics is not None and n:
            self._metrics.cache_lookups.labels(backend=self.backend, result=result).inc(n)

    def _count_error(self, operation: str) -> None:
        if self._metrics is not None:
            self._metrics.cache_errors.labels(backend=self.backend, operation=operation).inc()


class MemoryCache(_Counting):
    """Per-process cache: entries expire after ``ttl_seconds``; beyond ``max_entries`` the least recently
    used go first. Used from the event loop thread only (``TTLCache`` is not thread-safe)."""

    backend = "memory"

    def __init__(
        self,
        *,
        max_entries: int,
        ttl_seconds: float,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._metrics = metrics
        self._entries: cachetools.TTLCache[str, str] = cachetools.TTLCache(max_entries, ttl_seconds)

    async def get_many(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        values = [None if (raw := self._entries.get(key)) is None else _decode(raw) for key in keys]
        hits = sum(value is not None for value in values)
        self._count_lookups("hit", hits)
        self._count_lookups("miss", len(values) - hits)
        return values

    async def set_many(self, items: Mapping[str, dict[str, Any]]) -> None:
        for key, value in items.items():
            try:
                self._entries[key] = _encode(value)
            except (TypeError, ValueError):
                self._count_error("set")
                log.warning("not caching a value that is not plain JSON (key %s)", key)

    def status(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "ok": True,
            "entries": len(self._entries),
            "max_entries": self.max_entries,
            "ttl_seconds": self.ttl_seconds,
        }

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._entries.clear()


def redact_url(url: str) -> str:
    """The URL with any password (in the userinfo or a ``password=`` query option) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            host = netloc.rpartition("@")[2]
            netloc = f"{parts.username or ''}:***@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<unparsable url>"


class RedisCache(_Counting):
    """Shared cache in Redis: MGET to read, one pipeline of ``SET key value EX ttl`` to write.

    Every Redis call goes through the breaker, and redis-py's own retries are off, so a dead or slow
    Redis costs at most ``fail_max`` short timeouts before requests stop touching the network at all.
    """

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: int,
        breaker: AsyncCircuitBreaker,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.ttl_seconds = int(ttl_seconds)
        self.breaker = breaker
        self._metrics = metrics
        self._url = redact_url(url)
        timeout = breaker.call_timeout_s
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_error=[],
            health_check_interval=0,
        )

    async def get_many(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        keys = list(keys)
        if not keys:
            return []
        try:
            raw = await self.breaker.call(lambda: self._client.mget(keys))
            if len(raw) != len(keys):
                raise ValueError(f"MGET answered {len(raw)} values for {len(keys)} keys")
        except BreakerOpen:
            self._count_lookups("skipped", len(keys))
            return [None] * len(keys)
        except Exception as exc:
            self._count_error("get")
            self._count_lookups("skipped", len(keys))
            log.warning("redis cache read failed, serving uncached: %s: %s", type(exc).__name__, exc)
            return [None] * len(keys)

        values: list[dict[str, Any] | None] = []
        for key, item in zip(keys, raw, strict=True):
            value = None if item is None else _decode(item)
            if item is not None and value is None:
                log.warning("redis cache value under %s is not a JSON object; treated as a miss", key)
            values.append(value)
        hits = sum(value is not None for value in values)
        self._count_lookups("hit", hits)
        self._count_lookups("miss", len(values) - hits)
        return values

    async def set_many(self, items: Mapping[str, dict[str, Any]]) -> None:
        encoded: dict[str, str] = {}
        for key, value in items.items():
            try:
                encoded[key] = _encode(value)
            except (TypeError, ValueError):
                self._count_error("set")
                log.warning("not caching a value that is not plain JSON (key %s)", key)
        if not encoded:
            return

        async def write() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, text in encoded.items():
                    pipe.set(key, text, ex=self.ttl_seconds)
                await pipe.execute()

        try:
            await self.breaker.call(write)
        except BreakerOpen:
            return
        except Exception as exc:
            self._count_error("set")
            log.warning("redis cache write failed, dropped: %s: %s", type(exc).__name__, exc)

    def status(self) -> dict[str, Any]:
        state = self.breaker.state
        return {
            "backend": self.backend,
            "ok": state == CLOSED,
            "breaker": state,
            "url": self._url,
            "ttl_seconds": self.ttl_seconds,
        }

    async def ping(self) -> bool:
        try:
            return bool(await self.breaker.call(self._client.ping))
        except Exception:
            return False

    async def close(self) -> None:
        try:
            await self._client.aclose()
        except Exception as exc:  # closing a dead connection must not fail shutdown
            log.debug("closing redis client: %s", exc)


def build_cache(settings: Settings, metrics: ServiceMetrics | None) -> PredictionCache:
    """Redis when ``redis_url`` is set, otherwise an in-process cache."""
    if not settings.redis_url:
        return MemoryCache(
            max_entries=settings.cache_max_entries, ttl_seconds=settings.cache_ttl_seconds, metrics=metrics
        )
    breaker = AsyncCircuitBreaker(
        "redis",
        fail_max=settings.breaker_fail_max,
        reset_timeout_s=settings.breaker_reset_seconds,
        call_timeout_s=settings.redis_timeout_ms / 1000.0,
        on_state_change=None if metrics is None else metrics.set_breaker_state,
    )
    return RedisCache(
        settings.redis_url, ttl_seconds=settings.cache_ttl_seconds, breaker=breaker, metrics=metrics
    )
