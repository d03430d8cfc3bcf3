"""The async circuit breaker's own logic, driven by plain async functions that fail, succeed or hang."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from ticket_triage.serving.breaker import AsyncCircuitBreaker, BreakerOpen

T = TypeVar("T")

#: Long enough that an open breaker never flips to half-open during a test that does not wait for it.
LONG_RESET = 60.0
SHORT_RESET = 0.2


class DownError(ConnectionError):
    """What the fake dependency raises."""


class Dependency:
    """A fake dependency that records how often it was called."""

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0

    async def ok(self) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        return "pong"

    async def fail(self) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        raise DownError("dependency down")

    async def hang(self) -> str:
        self.calls += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return "never"


def make(
    *, fail_max: int = 3, reset: float = LONG_RESET, timeout: float = 1.0, events: list[str] | None = None
) -> AsyncCircuitBreaker:
    return AsyncCircuitBreaker(
        "test",
        fail_max=fail_max,
        reset_timeout_s=reset,
        call_timeout_s=timeout,
        on_state_change=None if events is None else events.append,
    )


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro_fn(), timeout=30)  # a guard against hangs, not a speed target

    return asyncio.run(main())


async def trip(breaker: AsyncCircuitBreaker, dep: Dependency) -> None:
    while breaker.state == "closed":
        with pytest.raises(DownError):
            await breaker.call(dep.fail)


async def wait_half_open(breaker: AsyncCircuitBreaker) -> None:
    while breaker.state != "half-open":
        await asyncio.sleep(0.02)


def test_opens_after_fail_max_consecutive_failures_and_reraises_the_original() -> None:
    async def scenario() -> None:
        breaker, dep = make(fail_max=3), Dependency()
        for expected_count in (1, 2):
            with pytest.raises(DownError, match="dependency down"):
                await breaker.call(dep.fail)
            assert breaker.state == "closed"
            assert breaker.fail_counter == expected_count
        with pytest.raises(DownError):
            await breaker.call(dep.fail)
        assert breaker.state == "open"
        assert dep.calls == 3

    run(scenario)


def test_a_success_resets_the_consecutive_failure_count() -> None:
    async def scenario() -> None:
        breaker, dep = make(fail_max=3), Dependency()
        for fn in (dep.fail, dep.fail, dep.ok, dep.fail, dep.fail):
            with contextlib.suppress(DownError):
                await breaker.call(fn)
        assert breaker.state == "closed"
        assert breaker.fail_counter == 2
        assert await breaker.call(dep.ok) == "pong"
        assert breaker.fail_counter == 0

    run(scenario)


def test_open_breaker_skips_without_calling_fn() -> None:
    async def scenario() -> None:
        breaker, dep = make(fail_max=2), Dependency()
        await trip(breaker, dep)
        calls_when_opened = dep.calls
        for fn in (dep.ok, dep.fail, dep.hang):
            with pytest.raises(BreakerOpen):
                await breaker.call(fn)
        assert dep.calls == calls_when_opened == 2
        assert breaker.state == "open"

    run(scenario)


def test_slow_call_times_out_is_cancelled_and_counts_as_a_failure() -> None:
    async def scenario() -> None:
        breaker, dep = make(fail_max=2, timeout=0.05), Dependency()
        with pytest.raises(TimeoutError):
            await breaker.call(dep.hang)
        assert dep.cancelled == 1  # the slow call does not linger after its deadline
        assert breaker.fail_counter == 1
        assert breaker.state == "closed"
        with pytest.raises(TimeoutError):
            await breaker.call(dep.hang)
        assert breaker.state == "open"
        with pytest.raises(BreakerOpen):
            await breaker.call(dep.hang)
        assert dep.calls == 2

    run(scenario)


def test_state_reports_open_until_the_reset_timeout_then_half_open() -> None:
    async def scenario() -> None:
        events: list[str] = []
        breaker, dep = make(fail_max=1, reset=SHORT_RESET, events=events), Dependency()
        await trip(breaker, dep)
        assert breaker.state == "open"
        await wait_half_open(breaker)
        # The flip is lazy, as in pybreaker: nothing is announced until a call meets the half-open state.
        assert events == ["open"]
        assert await breaker.call(dep.ok) == "pong"
        assert breaker.state == "closed"
        assert events == ["open", "half-open", "closed"]

    run(scenario)


def test_exactly_one_half_open_trial_under_concurrency() -> None:
    async def scenario() -> None:
        breaker, dep = make(fail_max=1, reset=SHORT_RESET), Dependency()
        await trip(breaker, dep)
        await wait_half_open(breaker)

        release = asyncio.Event()
        trial_calls = 0

        async def slow_ok() -> str:
            nonlocal trial_calls
            trial_calls += 1
            await release.wait()
            return "recovered"

        tasks = [asyncio.create_task(breaker.call(slow_ok)) for _ in range(10)]
        await asyncio.sleep(0.05)  # let every task reach the breaker while the trial is still in flight
        assert trial_calls == 1
        assert breaker.state == "half-open"
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)

        assert results.count("recovered") == 1
        assert sum(isinstance(r, BreakerOpen) for r in results) == 9
        assert breaker.state == "closed"
        # Closed again: everyone gets through.
        assert await asyncio.gather(*(breaker.call(dep.ok) for _ in range(5))) == ["pong"] * 5

    run(scenario)


def test_failed_trial_reopens_for_another_full_reset_timeout() -> None:
    async def scenario() -> None:
        events: list[str] = []
        breaker, dep = make(fail_max=2, reset=SHORT_RESET, events=events), Dependency()
        await trip(breaker, dep)
        await wait_half_open(breaker)
        with pytest.raises(DownError):
            await breaker.call(dep.fail)
        assert breaker.state == "open"
        calls = dep.calls
        with pytest.raises(BreakerOpen):
            await breaker.call(dep.ok)
        assert dep.calls == calls
        await wait_half_open(breaker)
        assert await breaker.call(dep.ok) == "pong"
        assert events == ["open", "half-open", "open", "half-open", "closed"]

    run(scenario)


def test_timed_out_trial_reopens() -> None:
    async def scenario() -> None:
        breaker, dep = make(fail_max=1, reset=SHORT_RESET, timeout=0.05), Dependency()
        await trip(breaker, dep)
        await wait_half_open(breaker)
        with pytest.raises(TimeoutError):
            await breaker.call(dep.hang)
        assert breaker.state == "open"

    run(scenario)


def test_cancellation_is_neither_failure_nor_success() -> None:
    async def scenario() -> None:
        breaker, dep = make(fail_max=3), Dependency()
        for _ in range(2):
            with pytest.raises(DownError):
                await breaker.call(dep.fail)
        assert breaker.fail_counter == 2

        for _ in range(3):  # more cancellations than fail_max: none of them may trip the breaker
            task = asyncio.create_task(breaker.call(dep.hang))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert dep.cancelled == 3
        # Not a failure (still closed) and not a success (the count was not reset).
        assert breaker.state == "closed"
        assert breaker.fail_counter == 2
        with pytest.raises(DownError):
            await breaker.call(dep.fail)
        assert breaker.state == "open"

    run(scenario)


def test_cancelled_trial_frees_the_slot_and_keeps_half_open() -> None:
    async def scenario() -> None:
        events: list[str] = []
        breaker, dep = make(fail_max=1, reset=SHORT_RESET, events=events), Dependency()
        await trip(breaker, dep)
        await wait_half_open(breaker)

        trial = asyncio.create_task(breaker.call(dep.hang))
        await asyncio.sleep(0.01)
        with pytest.raises(BreakerOpen):  # the trial is in flight
            await breaker.call(dep.ok)
        trial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trial

        assert breaker.state == "half-open"  # neither closed (success) nor reopened (failure)
        assert events == ["open", "half-open"]
        assert await breaker.call(dep.ok) == "pong"  # the next caller is the new trial
        assert breaker.state == "closed"
        assert events == ["open", "half-open", "closed"]

    run(scenario)


def test_late_outcome_of_a_call_admitted_before_the_breaker_opened_is_ignored() -> None:
    async def scenario() -> None:
        breaker, dep = make(fail_max=2), Dependency()
        release = asyncio.Event()

        async def slow_ok() -> str:
            await release.wait()
            return "late"

        straggler = asyncio.create_task(breaker.call(slow_ok))
        await asyncio.sleep(0.01)
        await trip(breaker, dep)
        release.set()
        assert await straggler == "late"  # the caller still gets its result...
        assert breaker.state == "open"  # ...but it does not close the breaker that later failures opened

    run(scenario)


def test_listener_sees_every_transition_in_order_and_its_errors_do_not_break_the_breaker() -> None:
    async def scenario() -> None:
        seen: list[str] = []

        def flaky_listener(state: str) -> None:
            seen.append(state)
            raise RuntimeError("metrics backend broken")

        breaker = AsyncCircuitBreaker(
            "test",
            fail_max=1,
            reset_timeout_s=SHORT_RESET,
            call_timeout_s=1.0,
            on_state_change=flaky_listener,
        )
        dep = Dependency()
        await trip(breaker, dep)
        assert breaker.state == "open"
        await wait_half_open(breaker)
        assert await breaker.call(dep.ok) == "pong"
        assert breaker.state == "closed"
        assert seen == ["open", "half-open", "closed"]

    run(scenario)


@pytest.mark.parametrize(
    ("fail_max", "reset", "timeout"), [(0, 1.0, 1.0), (1, 0.0, 1.0), (1, 1.0, 0.0), (1, -1.0, 1.0)]
)
def test_rejects_nonsense_settings(fail_max: int, reset: float, timeout: float) -> None:
    with pytest.raises(ValueError):
        AsyncCircuitBreaker("x", fail_max=fail_max, reset_timeout_s=reset, call_timeout_s=timeout)
