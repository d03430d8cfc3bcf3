"""A value written into Redis by anyone but this deployment is never served as the model's answer.

Against the real Redis on 127.0.0.1:6379: forged values are written straight into the keys the service
reads (with redis-py, as an intruder with network access to Redis would), and each one must come back as
a miss, be counted as rejected, be deleted, and be replaced by the recomputed value on the next write.
Each test writes under its own model version and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import stat
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from ticket_triage.config import Settings
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.serving.breaker import AsyncCircuitBreaker
from ticket_triage.serving.cache import RedisCache, build_cache, cache_key, sign, signing_key
from ticket_triage.serving.inference import Scores

T = TypeVar("T")

SHARED_URL = "redis://127.0.0.1:6379/0"
OUR_KEY = b"this-deployment-cache-key-0001"
OTHER_KEY = b"some-other-deployment-key-0002"
N_CATEGORY, N_PRIORITY = 3, 2  # the shape of the (stand-in) serving model's labels


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro_fn(), timeout=60)  # a guard against hangs, not a speed target

    return asyncio.run(main())


def rejected(metrics: ServiceMetrics) -> float:
    labels = {"backend": "redis", "result": "rejected"}
    return metrics.registry.get_sample_value("triage_cache_lookups_total", labels) or 0.0


def genuine(text: str) -> dict[str, Any]:
    """What the model computed for a ticket, as the service caches it (``Scores.to_json``)."""
    return {"category": [0.6, 0.3, 0.1], "priority": [0.8, 0.2], "signals": {"chars": float(len(text))}}


def cache_on(url: str, secret: bytes, metrics: ServiceMetrics) -> RedisCache:
    breaker = AsyncCircuitBreaker("redis", fail_max=5, reset_timeout_s=30, call_timeout_s=2.0)
    return RedisCache(url, ttl_seconds=300, breaker=breaker, signing_key=secret, metrics=metrics)


def _json(value: object) -> str:
    return json.dumps(value)


def signed(text: str, secret: bytes = OUR_KEY, *, under: str = "") -> Callable[[str], bytes]:
    """The stored form of ``text`` signed with ``secret``, for the key it is written under (+ ``under``)."""
    return lambda key: sign(secret, key + under, text)


def unsigned(text: str | bytes) -> Callable[[str], bytes]:
    return lambda key: text.encode() if isinstance(text, str) else text


SURE = _json({"category": [1.0, 0.0, 0.0], "priority": [1.0, 0.0]})  # confidence 1.0, shaped like ours

# Forged values an intruder could write. "signed" ones carry this deployment's own signature, as if the
# secret had leaked or a bug had stored them: the range checks must refuse them on their own.
FORGED: list[tuple[str, Callable[[str], bytes]]] = [
    ("confidence 1.0, unsigned", unsigned(SURE)),
    ("confidence 1.0, another deployment's key", signed(SURE, OTHER_KEY)),
    ("our signature for another ticket", signed(_json(genuine("x")), under="-other")),
    ("our signature, text changed", lambda k: signed(_json(genuine("x")))(k).replace(b"0.6", b"0.9")),
    ("probabilities of 5.0, signed", signed(_json({"category": [5.0, 5.0, 5.0]}))),
    ("probabilities summing to 2.7, signed", signed(_json({"category": [0.9, 0.9, 0.9]}))),
    ("negative probability, signed", signed(_json({"category": [1.5, -0.5, 0.0]}))),
    ("NaN, unsigned", unsigned('{"category": [NaN, 0.5, 0.5], "priority": null, "signals": null}')),
    ("NaN, signed", signed('{"category": [NaN, 0.5, 0.5]}')),
    ("Infinity in signals, signed", signed('{"category": [1.0], "signals": {"a": 1e999}}')),
    ("an answer with a label, signed", signed(_json({"category": [1.0, 0, 0], "label": "billing"}))),
    ("a tag probability of 3.0, signed", signed(_json({"category": [1.0, 0, 0], "tags": [3.0, 0.1]}))),
    ("tags that are not a list, signed", signed(_json({"category": [1.0, 0, 0], "tags": {"bug": 0.9}}))),
    ("string probabilities, signed", signed(_json({"category": ["1", "0", "0"]}))),
    ("booleans, signed", signed(_json({"category": [True, False, False]}))),
    ("not an object, signed", signed("[1, 0, 0]")),
    ("garbage bytes", unsigned(b"\xff\xfe\x00garbage{")),
    ("empty", unsigned(b"")),
    ("over 64 KiB, signed", signed(_json({**genuine("x"), "signals": {"pad": 1.0, "x" * 70_000: 1.0}}))),
]


@pytest.mark.parametrize(("case", "forge"), FORGED, ids=[case for case, _ in FORGED])
def test_a_forged_value_is_a_miss_deleted_counted_and_replaced_by_the_recomputed_one(
    shared: tuple[redis.Redis, str], case: str, forge: Callable[[str], bytes]
) -> None:
    client, version = shared
    metrics = ServiceMetrics()
    key = cache_key(version, {"text": case})
    client.set(key, forge(key))

    async def scenario() -> tuple[list[dict[str, Any] | None], int, list[dict[str, Any] | None]]:
        cache = cache_on(SHARED_URL, OUR_KEY, metrics)
        try:
            first = await cache.get_many([key])
            left_in_redis = int(client.exists(key))
            await cache.set_many({key: genuine(case)})  # what the service does after scoring the miss
            return first, left_in_redis, await cache.get_many([key])
        finally:
            await cache.close()

    first, left_in_redis, after = run(scenario)
    assert first == [None], f"{case}: served {first}"
    assert left_in_redis == 0
    assert rejected(metrics) == 1
    assert after == [genuine(case)]


def test_delete_spares_a_fresh_value_written_after_the_forged_one_was_read(
    shared: tuple[redis.Redis, str],
) -> None:
    """Another worker may store the recomputed value between our read and our delete."""
    client, version = shared
    key = cache_key(version, {"text": "race"})
    forged = _json({"category": [1.0, 0.0, 0.0]}).encode()

    async def scenario() -> list[dict[str, Any] | None]:
        cache = cache_on(SHARED_URL, OUR_KEY, ServiceMetrics())
        try:
            await cache.set_many({key: genuine("race")})
            await cache._delete({key: forged})  # the stale forged value no longer matches: nothing deleted
            return await cache.get_many([key])
        finally:
            await cache.close()

    assert run(scenario) == [genuine("race")]
    assert client.exists(key) == 1


def test_nan_never_reaches_the_caller_and_what_is_served_rebuilds_as_the_models_scores(
    shared: tuple[redis.Redis, str],
) -> None:
    client, version = shared
    keys = [cache_key(version, {"text": str(i)}) for i in range(4)]
    client.set(keys[0], b'{"category": [NaN, NaN, NaN]}')
    client.set(keys[1], sign(OUR_KEY, keys[1], '{"category": [-Infinity, 1, 1]}'))

    async def scenario() -> list[dict[str, Any] | None]:
        cache = cache_on(SHARED_URL, OUR_KEY, ServiceMetrics())
        try:
            await cache.set_many({keys[2]: genuine("2"), keys[3]: genuine("3")})
            return await cache.get_many(keys)
        finally:
            await cache.close()

    values = run(scenario)
    assert values[:2] == [None, None]
    for value in values[2:]:
        assert value is not None
        scores = Scores.from_json(value, N_CATEGORY, N_PRIORITY)  # the service's own rebuild accepts it
        assert all(math.isfinite(p) for p in [*scores.category, *(scores.priority or [])])


def test_writing_a_value_that_is_not_scores_is_refused(shared: tuple[redis.Redis, str]) -> None:
    """What we would refuse to read we never store (it would only be deleted again)."""
    client, version = shared
    metrics = ServiceMetrics()
    bad, good = cache_key(version, {"text": "bad"}), cache_key(version, {"text": "good"})

    async def scenario() -> None:
        cache = cache_on(SHARED_URL, OUR_KEY, metrics)
        try:
            await cache.set_many({bad: {"category": [0.5, 0.6]}, good: genuine("good")})
        finally:
            await cache.close()

    run(scenario)
    assert client.exists(bad) == 0 and client.exists(good) == 1
    assert (
        metrics.registry.get_sample_value(
            "triage_cache_errors_total", {"backend": "redis", "operation": "set"}
        )
        == 1
    )


# --- the signing secret ---------------------------------------------------------------------------------


def test_workers_share_one_private_key_file_and_another_deployment_cannot_read_their_entries(
    shared: tuple[redis.Redis, str], tmp_path: Path
) -> None:
    client, version = shared
    key_file = tmp_path / "var" / "cache_signing.key"
    settings = Settings(redis_url=SHARED_URL, redis_timeout_ms=2000, cache_signing_key_file=key_file)
    other = Settings(redis_url=SHARED_URL, redis_timeout_ms=2000, cache_signing_key=OTHER_KEY.decode())
    key = cache_key(version, {"text": "shared"})
    metrics = ServiceMetrics()

    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        worker_a, worker_b = build_cache(settings, None), build_cache(settings, None)
        intruder = build_cache(other, metrics)
        try:
            await worker_a.set_many({key: genuine("shared")})
            seen_by_b = await worker_b.get_many([key])
            seen_by_other = await intruder.get_many([key])
            return seen_by_b, seen_by_other, await worker_a.get_many([key])
        finally:
            for cache in (worker_a, worker_b, intruder):
                await cache.close()

    seen_by_b, seen_by_other, after = run(scenario)
    assert seen_by_b == [genuine("shared")]
    assert seen_by_other == [None] and rejected(metrics) == 1
    assert after == [None]  # the other deployment deleted what it could not trust; ours recomputes it
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) == 64
    assert client.exists(key) == 0


def _key_in_a_fresh_process(path: str) -> bytes:
    return signing_key(None, Path(path))


def test_racing_workers_all_end_up_with_the_same_key(tmp_path: Path) -> None:
    key_file = tmp_path / "cache_signing.key"
    with ProcessPoolExecutor(max_workers=4) as pool:
        keys = set(pool.map(_key_in_a_fresh_process, [str(key_file)] * 8))
    assert len(keys) == 1
    assert sorted(os.listdir(tmp_path)) == ["cache_signing.key"]  # no temporary file left behind


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        signing_key("short", Path("/nonexistent"))
    with pytest.raises(ValueError, match="at least 16 bytes"):
        cache_on(SHARED_URL, b"short", ServiceMetrics())
