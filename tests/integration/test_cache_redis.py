"""The prediction cache against real Redis: the shared one on 127.0.0.1:6379 and private servers we kill.

Tests that use the shared Redis write under their own model version (a unique key namespace) and delete
their keys afterwards. Tests that break Redis start their own ``redis-server`` and only ever stop that.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import redis
from tests.integration.conftest import PrivateRedis

from ticket_triage.config import Settings
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.serving.breaker import AsyncCircuitBreaker
from ticket_triage.serving.cache import MemoryCache, RedisCache, build_cache, cache_key, sign

T = TypeVar("T")

SHARED_URL = "redis://127.0.0.1:6379/0"
SIGNING_KEY = "test-cache-signing-key-0123456789"


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro_fn(), timeout=60)  # a guard against hangs, not a speed target

    return asyncio.run(main())


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def lookups(metrics: ServiceMetrics, backend: str, result: str) -> float:
    return sample(metrics, "triage_cache_lookups_total", backend=backend, result=result)


def errors(metrics: ServiceMetrics, backend: str, operation: str) -> float:
    return sample(metrics, "triage_cache_errors_total", backend=backend, operation=operation)


def prediction(label: str) -> dict[str, Any]:
    """Scores as the service caches them (the only values the cache takes); ``label`` tells them apart."""
    return {"category": [0.7, 0.2, 0.1], "priority": [0.5, 0.5], "signals": {label: 1.0, "Größe ✓": 0.25}}


def stored_json(raw: bytes) -> object:
    """The JSON part of a stored value: 64 hex digits of signature come first."""
    return json.loads(raw[64:])


# --- fixtures ---------------------------------------------------------------------------------------


def redis_cache(
    url: str,
    metrics: ServiceMetrics,
    *,
    fail_max: int = 3,
    reset: float = 60.0,
    timeout: float = 0.5,
    ttl: int = 300,
    events: list[str] | None = None,
) -> RedisCache:
    def on_change(state: str) -> None:
        metrics.set_breaker_state(state)
        if events is not None:
            events.append(state)

    breaker = AsyncCircuitBreaker(
        "redis", fail_max=fail_max, reset_timeout_s=reset, call_timeout_s=timeout, on_state_change=on_change
    )
    return RedisCache(
        url, ttl_seconds=ttl, breaker=breaker, signing_key=SIGNING_KEY.encode(), metrics=metrics
    )


async def wait_half_open(cache: RedisCache) -> None:
    while cache.breaker.state != "half-open":
        await asyncio.sleep(0.05)


# --- keys ---------------------------------------------------------------------------------------------


def test_cache_key_is_versioned_canonical_json_digest() -> None:
    fields = {"text": "Drucker défekt", "channel": "email", "created_hour": None}
    canonical = '{"channel":"email","created_hour":null,"text":"Drucker défekt"}'
    expected = hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    assert cache_key("2024-06-01.1", fields) == f"triage:v2:2024-06-01.1:{expected}"
    assert cache_key("2024-06-01.1", dict(reversed(fields.items()))) == cache_key("2024-06-01.1", fields)
    assert cache_key("2024-06-02.1", fields) != cache_key("2024-06-01.1", fields)
    assert cache_key("2024-06-01.1", {**fields, "channel": "chat"}) != cache_key("2024-06-01.1", fields)
    assert re.fullmatch(r"triage:v2:m:[0-9a-f]{64}", cache_key("m", {}))


# --- shared Redis -------------------------------------------------------------------------------------


def test_redis_round_trip_stores_json_and_counts_hits_and_misses(shared: tuple[redis.Redis, str]) -> None:
    client, version = shared
    metrics = ServiceMetrics()
    k1, k2, missing = (cache_key(version, {"text": t}) for t in ("a", "b", "never stored"))

    async def scenario() -> list[dict[str, object] | None]:
        cache = redis_cache(SHARED_URL, metrics)
        try:
            await cache.set_many({k1: prediction("one"), k2: prediction("two")})
            return await cache.get_many([k1, missing, k2])
        finally:
            await cache.close()

    assert run(scenario) == [prediction("one"), None, prediction("two")]
    assert stored_json(client.get(k1)) == prediction("one")  # signed JSON text, readable by anyone
    assert lookups(metrics, "redis", "hit") == 2
    assert lookups(metrics, "redis", "miss") == 1
    assert errors(metrics, "redis", "get") == errors(metrics, "redis", "set") == 0


def test_redis_keys_get_the_configured_ttl(shared: tuple[redis.Redis, str]) -> None:
    client, version = shared
    key = cache_key(version, {"text": "ttl"})

    async def scenario() -> None:
        cache = redis_cache(SHARED_URL, ServiceMetrics(), ttl=120)
        try:
            await cache.set_many({key: prediction("ttl")})
        finally:
            await cache.close()

    run(scenario)
    assert 100 < client.ttl(key) <= 120


def test_model_version_in_the_key_isolates_models(shared: tuple[redis.Redis, str]) -> None:
    _, version = shared
    fields = {"text": "same ticket", "channel": "email"}
    old, new = cache_key(f"{version}-old", fields), cache_key(version, fields)

    async def scenario() -> list[dict[str, object] | None]:
        cache = redis_cache(SHARED_URL, ServiceMetrics())
        try:
            await cache.set_many({old: prediction("old model")})
            return await cache.get_many([new, old])
        finally:
            await cache.close()

    try:
        assert run(scenario) == [None, prediction("old model")]
    finally:
        shared[0].delete(old)


def test_corrupt_stored_value_is_a_miss_not_an_error(shared: tuple[redis.Redis, str]) -> None:
    client, version = shared
    metrics = ServiceMetrics()
    garbage, not_an_object, bad_utf8, good = (cache_key(version, {"text": t}) for t in "abcd")
    client.set(garbage, "{not json")
    client.set(not_an_object, "[1, 2, 3]")
    client.set(bad_utf8, b"\xff\xfe{")
    client.set(good, sign(SIGNING_KEY.encode(), good, json.dumps(prediction("good"))))

    async def scenario() -> list[dict[str, object] | None]:
        cache = redis_cache(SHARED_URL, metrics)
        try:
            return await cache.get_many([garbage, not_an_object, bad_utf8, good])
        finally:
            await cache.close()

    assert run(scenario) == [None, None, None, prediction("good")]
    assert lookups(metrics, "redis", "rejected") == 3
    assert lookups(metrics, "redis", "miss") == 0
    assert lookups(metrics, "redis", "hit") == 1
    assert errors(metrics, "redis", "get") == 0
    assert client.exists(garbage, not_an_object, bad_utf8) == 0  # deleted, so the next write starts clean


def test_value_that_is_not_json_is_dropped_not_raised(shared: tuple[redis.Redis, str]) -> None:
    client, version = shared
    metrics = ServiceMetrics()
    bad, good = cache_key(version, {"text": "nan"}), cache_key(version, {"text": "fine"})

    async def scenario() -> None:
        cache = redis_cache(SHARED_URL, metrics)
        try:
            await cache.set_many({bad: {"p": float("nan")}, good: prediction("fine")})
        finally:
            await cache.close()

    run(scenario)
    assert client.exists(bad) == 0
    assert stored_json(client.get(good)) == prediction("fine")
    assert errors(metrics, "redis", "set") == 1


def test_ping_status_and_build_cache_on_the_shared_redis() -> None:
    metrics = ServiceMetrics()
    settings = Settings(
        redis_url=SHARED_URL,
        redis_timeout_ms=400,
        breaker_fail_max=4,
        breaker_reset_seconds=7,
        cache_signing_key=SIGNING_KEY,
    )

    async def scenario() -> tuple[bool, dict[str, object]]:
        cache = build_cache(settings, metrics)
        try:
            assert isinstance(cache, RedisCache)
            assert cache.breaker.call_timeout_s == pytest.approx(0.4)
            assert cache.breaker.reset_timeout_s == 7
            return await cache.ping(), cache.status()
        finally:
            await cache.close()

    alive, status = run(scenario)
    assert alive is True
    assert status == {
        "backend": "redis",
        "ok": True,
        "breaker": "closed",
        "url": SHARED_URL,
        "ttl_seconds": 3600,
    }


def test_status_never_shows_the_password() -> None:
    async def scenario() -> dict[str, object]:
        cache = redis_cache("redis://triage:s3cret@127.0.0.1:6379/2?password=0th3r&db=2", ServiceMetrics())
        try:
            return cache.status()
        finally:
            await cache.close()

    status = run(scenario)
    assert "s3cret" not in str(status)
    assert "0th3r" not in str(status)
    assert status["url"] == "redis://triage:***@127.0.0.1:6379/2?password=***&db=2"


# --- failures: a private redis-server ---------------------------------------------------------------


def test_no_client_side_retries_one_connection_attempt_per_call() -> None:
    """An endpoint that accepts and hangs up at once: redis-py retries would show as several accepts."""
    accepted = 0

    async def scenario() -> list[dict[str, object] | None]:
        nonlocal accepted

        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        metrics = ServiceMetrics()
        cache = redis_cache(f"redis://127.0.0.1:{port}/0", metrics, fail_max=10)
        try:
            result = await cache.get_many(["triage:v2:x:1", "triage:v2:x:2"])
            await asyncio.sleep(0.2)  # a retry would connect again within this time
            assert errors(metrics, "redis", "get") == 1
            assert lookups(metrics, "redis", "skipped") == 2
            return result
        finally:
            await cache.close()
            server.close()
            await server.wait_closed()

    assert run(scenario) == [None, None]
    assert accepted == 1


def test_dead_redis_opens_the_breaker_and_then_calls_stay_off_the_network(
    private_redis: PrivateRedis,
) -> None:
    metrics = ServiceMetrics()
    events: list[str] = []
    keys = [f"triage:v2:m:{i}" for i in range(3)]

    async def scenario() -> None:
        cache = redis_cache(private_redis.url, metrics, fail_max=3, reset=600, timeout=0.5, events=events)
        try:
            await cache.set_many({keys[0]: prediction("before")})
            assert await cache.get_many(keys[:1]) == [prediction("before")]
            assert await cache.ping() is True

            private_redis.kill()
            for attempt in range(1, 4):
                assert await cache.get_many(keys) == [None, None, None]
                assert cache.breaker.state == ("open" if attempt == 3 else "closed")
            assert errors(metrics, "redis", "get") == 3
            assert events == ["open"]
            assert cache.status()["ok"] is False
            assert cache.status()["breaker"] == "open"

            # Bring a server back on the same port: any call that reached the network would show in its stats.
            private_redis.start()
            with private_redis.client() as probe:
                before = probe.info("stats")
                for _ in range(5):
                    assert await cache.get_many(keys) == [None, None, None]
                    await cache.set_many({keys[1]: prediction("while open")})
                    assert await cache.ping() is False
                after = probe.info("stats")
                assert after["total_connections_received"] == before["total_connections_received"]
                # The only command in between is the probe's own second INFO.
                assert after["total_commands_processed"] == before["total_commands_processed"] + 1
                assert probe.dbsize() == 0
            assert errors(metrics, "redis", "get") == 3  # skipping is not an error
            assert errors(metrics, "redis", "set") == 0
            assert lookups(metrics, "redis", "skipped") == 3 * 3 + 5 * 3
        finally:
            await cache.close()

    run(scenario)
    assert sample(metrics, "triage_cache_breaker_state") == 2.0


def test_redis_back_on_the_same_port_closes_the_breaker_after_the_reset_timeout(
    private_redis: PrivateRedis,
) -> None:
    metrics = ServiceMetrics()
    settings = Settings(
        redis_url=private_redis.url,
        redis_timeout_ms=500,
        breaker_fail_max=2,
        breaker_reset_seconds=0.5,
        cache_signing_key=SIGNING_KEY,
    )
    key = "triage:v2:m:recover"

    async def scenario() -> None:
        cache = build_cache(settings, metrics)
        assert isinstance(cache, RedisCache)
        try:
            private_redis.kill()
            for _ in range(2):
                assert await cache.get_many([key]) == [None]
            assert cache.breaker.state == "open"

            private_redis.start()
            await wait_half_open(cache)
            assert await cache.get_many([key]) == [None]  # the trial: a real MGET, a plain miss
            assert cache.breaker.state == "closed"
            await cache.set_many({key: prediction("after")})
            assert await cache.get_many([key]) == [prediction("after")]
            assert cache.status()["ok"] is True
        finally:
            await cache.close()

    run(scenario)
    with private_redis.client() as probe:
        assert stored_json(probe.get(key)) == prediction("after")
        assert 0 < probe.ttl(key) <= 3600
    assert sample(metrics, "triage_cache_breaker_state") == 0.0
    for state in ("open", "half-open", "closed"):
        assert sample(metrics, "triage_cache_breaker_transitions_total", state=state) == 1
    assert lookups(metrics, "redis", "hit") == 1


def test_frozen_redis_times_out_opens_the_breaker_and_answers_correctly_after(
    private_redis: PrivateRedis,
) -> None:
    """A slow Redis (SIGSTOP: the kernel accepts connections, nothing answers) counts like a dead one."""
    metrics = ServiceMetrics()
    keys = [f"triage:v2:m:slow{i}" for i in range(2)]

    async def scenario() -> None:
        cache = redis_cache(private_redis.url, metrics, fail_max=2, reset=0.5, timeout=0.1)
        try:
            await cache.set_many({k: prediction(k) for k in keys})
            private_redis.freeze()
            for _ in range(2):
                assert await cache.get_many(keys) == [None, None]
            assert cache.breaker.state == "open"
            assert errors(metrics, "redis", "get") == 2

            private_redis.thaw()
            await wait_half_open(cache)
            # Timed-out commands must not leave stale replies behind: each key gets its own value back.
            assert await cache.get_many(keys) == [prediction(k) for k in keys]
            assert await cache.get_many(keys[::-1]) == [prediction(k) for k in keys[::-1]]
            assert cache.breaker.state == "closed"
        finally:
            await cache.close()

    run(scenario)


# --- the in-process cache -----------------------------------------------------------------------------


def test_memory_cache_hits_misses_and_returns_copies() -> None:
    metrics = ServiceMetrics()
    value = prediction("mem")

    async def scenario() -> None:
        cache = MemoryCache(max_entries=10, ttl_seconds=60, metrics=metrics)
        await cache.set_many({"a": value})
        value["signals"]["added by the caller after set"] = 2.0
        first, missing = await cache.get_many(["a", "b"])
        assert first == prediction("mem")
        assert missing is None
        first["category"].append(1.0)  # type: ignore[union-attr]
        assert await cache.get_many(["a"]) == [prediction("mem")]
        assert await cache.ping() is True
        assert cache.status() == {
            "backend": "memory",
            "ok": True,
            "entries": 1,
            "max_entries": 10,
            "ttl_seconds": 60,
        }

    run(scenario)
    assert lookups(metrics, "memory", "hit") == 2
    assert lookups(metrics, "memory", "miss") == 1


def test_memory_cache_entries_expire_after_the_ttl() -> None:
    async def scenario() -> list[dict[str, object] | None]:
        cache = MemoryCache(max_entries=10, ttl_seconds=0.2)
        await cache.set_many({"a": prediction("short-lived")})
        assert await cache.get_many(["a"]) == [prediction("short-lived")]
        await asyncio.sleep(0.4)
        return await cache.get_many(["a"])

    assert run(scenario) == [None]


def test_memory_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    async def scenario() -> None:
        cache = MemoryCache(max_entries=2, ttl_seconds=60)
        await cache.set_many({"a": prediction("1"), "b": prediction("2")})
        assert await cache.get_many(["a"]) == [prediction("1")]  # "a" is now more recent than "b"
        await cache.set_many({"c": prediction("3")})
        assert await cache.get_many(["a", "b", "c"]) == [prediction("1"), None, prediction("3")]
        assert cache.status()["entries"] == 2

    run(scenario)


def test_memory_cache_refuses_values_that_are_not_json() -> None:
    metrics = ServiceMetrics()

    async def scenario() -> list[dict[str, object] | None]:
        cache = MemoryCache(max_entries=10, ttl_seconds=60, metrics=metrics)
        not_json = {**prediction("x"), "signals": {"when": object()}}
        nan = {**prediction("x"), "category": [float("nan"), 0.5, 0.5]}
        await cache.set_many({"bad": not_json, "nan": nan, "ok": prediction("ok")})
        return await cache.get_many(["bad", "nan", "ok"])

    assert run(scenario) == [None, None, prediction("ok")]
    assert errors(metrics, "memory", "set") == 2


def test_build_cache_without_redis_url_is_in_process() -> None:
    cache = build_cache(Settings(redis_url=None, cache_max_entries=7, cache_ttl_seconds=9), None)
    assert isinstance(cache, MemoryCache)
    assert cache.status()["max_entries"] == 7
    assert cache.status()["ttl_seconds"] == 9
