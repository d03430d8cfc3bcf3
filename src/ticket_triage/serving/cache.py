"""Prediction cache: in-process (TTL + LRU) or Redis behind a circuit breaker.

The cache only ever saves work, so it must never fail a request: every Redis problem (down, slow,
breaker open, a corrupt stored value) turns into "not cached" here and shows up in the metrics instead.
Both backends keep values as JSON text, so a caller gets the same shapes (and its own fresh copy) from
either one, and a value that cannot be JSON is never stored.

Whoever can reach Redis can write to it, so nothing read from there is trusted: each value is stored
behind an HMAC-SHA256 of its key and text under a per-deployment secret (``cache_signing_key``), and
every value, from either backend, must also have the shape and ranges of model scores (finite
probabilities in [0, 1] that sum to 1). A value failing either check is a miss, counted as
``result="rejected"``, and deleted from Redis; the ticket is scored again and the fresh value replaces it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cachetools
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ticket_triage.data.canonical import input_digest
from ticket_triage.redaction import redact_url
from ticket_triage.serving.breaker import CLOSED, AsyncCircuitBreaker, BreakerOpen

if TYPE_CHECKING:
    from ticket_triage.config import Settings
    from ticket_triage.monitoring.metrics import ServiceMetrics

log = logging.getLogger(__name__)

#: Bump when the stored value's layout changes, so old entries are simply never read again.
#: v2: every value is signed (see ``sign``).
KEY_PREFIX = "triage:v2"


def cache_key(model_version: str, fields: Mapping[str, object]) -> str:
    """Key of one prediction: the model version plus the digest of its inputs (``data/canonical.py``)."""
    return f"{KEY_PREFIX}:{model_version}:{input_digest(fields)}"


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
        value = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None
    return value if isinstance(value, dict) else None


def _refuse_constant(name: str) -> float:
    """``json`` reads NaN and Infinity by default; no value we write holds one, so none is accepted."""
    raise ValueError(f"{name} is not JSON")


# --- what a cached value must look like -----------------------------------------------------------------

#: Scores of a cached prediction (``inference.Scores.to_json``): one probability per label, in the
#: model's label order, for the category and (when the model has one) the priority, plus the ticket's
#: monitored feature values, and each tag's own probability (they need not sum to 1) when it has tags.
SCORE_KEYS = frozenset({"category", "priority", "signals", "tags"})
MAX_LABELS = 1_000
MAX_SIGNALS = 256
#: Largest stored value read at all (a real one is well under 2 KB); checked before the signature.
MAX_VALUE_BYTES = 64 * 1024
#: Calibrated probabilities (a softmax) sum to 1 within ~1e-12 in float64 and ~1e-7 per label in
#: float32; JSON keeps them exactly. Far tighter than any forged value that still looks plausible.
SUM_TOLERANCE = 1e-4


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _probabilities_problem(name: str, value: object) -> str | None:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LABELS:
        return f"{name} is not a list of 1 to {MAX_LABELS} probabilities"
    if not all(_is_number(p) and 0.0 <= p <= 1.0 for p in value):
        return f"{name} holds a value that is not a finite number in [0, 1]"
    if abs(math.fsum(value) - 1.0) > SUM_TOLERANCE:
        return f"{name} probabilities sum to {math.fsum(value):.6g}, not 1"
    return None


def score_problem(value: object) -> str | None:
    """Why ``value`` cannot be a model's cached scores, or None when it can.

    The cache does not know which model wrote a value; the number of labels is checked against the
    serving model when the scores are rebuilt (``Scores.from_json``). This check makes sure no value
    outside the ranges a model produces (a probability of 5, a NaN) gets that far.
    """
    if not isinstance(value, dict):
        return "not a JSON object"
    if not set(value) <= SCORE_KEYS or "category" not in value:
        return f"keys {sorted(map(str, value))} are not those of model scores"
    problem = _probabilities_problem("category", value["category"])
    if problem is None and value.get("priority") is not None:
        problem = _probabilities_problem("priority", value["priority"])
    if problem is not None:
        return problem
    signals = value.get("signals")
    if signals is not None and not (
        isinstance(signals, dict)
        and len(signals) <= MAX_SIGNALS
        and all(isinstance(k, str) and _is_number(v) for k, v in signals.items())
    ):
        return f"signals is not a map of at most {MAX_SIGNALS} names to finite numbers"
    tags = value.get("tags")
    if tags is not None and not (
        isinstance(tags, list)
        and len(tags) <= MAX_LABELS
        and all(_is_number(p) and 0.0 <= p <= 1.0 for p in tags)
    ):
        return f"tags is not a list of at most {MAX_LABELS} probabilities in [0, 1]"
    return None


# --- signatures --------------------------------------------------------------------------------------

_MAC_HEX = 64  # hex digits of an HMAC-SHA256
MIN_KEY_BYTES = 16


def _mac(secret: bytes, key: str, payload: bytes) -> str:
    """Signature over the Redis key too, so a genuine value copied under another ticket's key fails."""
    message = b"triage-cache\x00" + key.encode("utf-8") + b"\x00" + payload
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(secret: bytes, key: str, text: str) -> bytes:
    """The stored form: 64 hex digits of signature, then the JSON text."""
    payload = text.encode("utf-8")
    return _mac(secret, key, payload).encode("ascii") + payload


def verified_payload(secret: bytes, key: str, stored: bytes | str) -> bytes | None:
    """The JSON text of a stored value whose signature is ours for this key, else None."""
    raw = stored.encode("utf-8", "surrogateescape") if isinstance(stored, str) else stored
    if len(raw) > MAX_VALUE_BYTES or len(raw) <= _MAC_HEX:
        return None
    mac, payload = raw[:_MAC_HEX], raw[_MAC_HEX:]
    if not hmac.compare_digest(mac, _mac(secret, key, payload).encode("ascii")):
        return None
    return payload


def signing_key(configured: str | None, key_file: Path) -> bytes:
    """The deployment's cache secret: the configured one, else one kept in ``key_file``.

    Without a configured secret the first process creates a random one (readable by its owner only) and
    every later worker on this host reads the same file; instances on other hosts sharing the Redis must
    be given ``TRIAGE_CACHE_SIGNING_KEY``, or they never hit each other's entries.
    """
    if configured is not None:
        secret = configured.encode("utf-8")
        if len(secret) < MIN_KEY_BYTES:
            raise ValueError(f"TRIAGE_CACHE_SIGNING_KEY must be at least {MIN_KEY_BYTES} bytes long")
        return secret
    try:
        return _read_key_file(key_file)
    except FileNotFoundError:
        pass
    key_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another worker's file won the race: use that one
            os.link(tmp, key_file)  # atomic and never overwrites
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key_file(key_file)


def _read_key_file(key_file: Path) -> bytes:
    secret = key_file.read_text(encoding="ascii").strip().encode("ascii")
    if len(secret) < MIN_KEY_BYTES:
        raise ValueError(f"the cache signing key in {key_file} is shorter than {MIN_KEY_BYTES} bytes")
    return secret


def _encoded(items: Mapping[str, dict[str, Any]], count_error: Callable[[str], None]) -> dict[str, str]:
    """The JSON text of each value worth storing: plain JSON with the shape of scores (else counted)."""
    encoded: dict[str, str] = {}
    for key, value in items.items():
        problem = score_problem(value)
        if problem is None:
            try:
                encoded[key] = _encode(value)
            except (TypeError, ValueError):
                problem = "not plain JSON"
        if problem is not None:
            count_error("set")
            log.warning("not caching a value under %s: %s", key, problem)
    return encoded


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
        values: list[dict[str, Any] | None] = []
        rejected = 0
        for key in keys:
            raw = self._entries.get(key)
            value = None if raw is None else _decode(raw)
            if raw is not None and score_problem(value) is not None:
                self._entries.pop(key, None)
                rejected += 1
                value = None
            values.append(value)
        hits = sum(value is not None for value in values)
        self._count_lookups("hit", hits)
        self._count_lookups("rejected", rejected)
        self._count_lookups("miss", len(values) - hits - rejected)
        return values

    async def set_many(self, items: Mapping[str, dict[str, Any]]) -> None:
        for key, text in _encoded(items, self._count_error).items():
            self._entries[key] = text

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


class RedisCache(_Counting):
    """Shared cache in Redis: MGET to read, one pipeline of ``SET key value EX ttl`` to write.

    Every Redis call goes through the breaker, and redis-py's own retries are off, so a dead or slow
    Redis costs at most ``fail_max`` short timeouts before requests stop touching the network at all.
    Values are signed with ``signing_key`` (see ``sign``); one that is not ours, or not scores, is
    deleted (only if it is still the same value, so a fresh one written meanwhile stays).
    """

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: int,
        breaker: AsyncCircuitBreaker,
        signing_key: bytes,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        if len(signing_key) < MIN_KEY_BYTES:
            raise ValueError(f"the cache signing key must be at least {MIN_KEY_BYTES} bytes long")
        self.ttl_seconds = int(ttl_seconds)
        self.breaker = breaker
        self._metrics = metrics
        self._secret = signing_key
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
        self._delete_if_unchanged = self._client.register_script(_DELETE_IF_UNCHANGED)

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
        rejected: dict[str, bytes | str] = {}
        first_problem = ""
        for key, item in zip(keys, raw, strict=True):
            value, problem = (None, None) if item is None else self._open(key, item)
            if problem is not None:
                rejected[key] = item
                first_problem = first_problem or f"{key}: {problem}"
            values.append(value)
        hits = sum(value is not None for value in values)
        self._count_lookups("hit", hits)
        self._count_lookups("rejected", len(rejected))
        self._count_lookups("miss", len(values) - hits - len(rejected))
        if rejected:
            log.warning(
                "rejected %d cached value(s) as not this deployment's scores, deleting them (%s)",
                len(rejected),
                first_problem,
            )
            await self._delete(rejected)
        return values

    def _open(self, key: str, item: bytes | str) -> tuple[dict[str, Any] | None, str | None]:
        """(value, None) for a value we signed under this key that has the shape of scores, else
        (None, why)."""
        payload = verified_payload(self._secret, key, item)
        if payload is None:
            return None, "no valid signature"
        value = _decode(payload)
        problem = score_problem(value)
        return (None, problem) if problem is not None else (value, None)

    async def _delete(self, stored: Mapping[str, bytes | str]) -> None:
        try:
            await self.breaker.call(
                lambda: self._delete_if_unchanged(keys=list(stored), args=list(stored.values()))
            )
        except BreakerOpen:
            return
        except Exception as exc:  # the value stays a miss either way; the next write replaces it
            self._count_error("delete")
            log.warning("deleting rejected cache values failed: %s: %s", type(exc).__name__, exc)

    async def set_many(self, items: Mapping[str, dict[str, Any]]) -> None:
        texts = _encoded(items, self._count_error)
        encoded = {key: sign(self._secret, key, text) for key, text in texts.items()}
        if not encoded:
            return

        async def write() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in encoded.items():
                    pipe.set(key, value, ex=self.ttl_seconds)
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


#: DEL each key only while it still holds the value that was rejected (KEYS[i] <-> ARGV[i]).
_DELETE_IF_UNCHANGED = """
local deleted = 0
for i, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[i] then
        deleted = deleted + redis.call('DEL', key)
    end
end
return deleted
"""


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
    configured = settings.cache_signing_key
    secret = signing_key(
        None if configured is None else configured.get_secret_value(), settings.cache_signing_key_file
    )
    return RedisCache(
        settings.redis_url,
        ttl_seconds=settings.cache_ttl_seconds,
        breaker=breaker,
        signing_key=secret,
        metrics=metrics,
    )
