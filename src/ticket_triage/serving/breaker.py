"""An asyncio circuit breaker around the cache's Redis calls, built on pybreaker's state machine.

pybreaker 1.4.1 has no native asyncio support (its issue #7): ``call_async`` needs tornado, and
``call`` holds a ``threading.RLock`` around the guarded function, so an ``await`` inside it would be
impossible and a blocking wait would stall the event loop. We therefore keep pybreaker for what it
does well (the closed/open/half-open state machine, the consecutive-failure counter, ``fail_max``,
listeners) and drive it from the event loop thread only, in three synchronous steps per call:

1. *admit* — decide from the state whether ``fn`` may run, without awaiting (so no other coroutine
   can interleave);
2. *run* — ``await fn()`` under ``asyncio.timeout``, outside any pybreaker code and outside its lock;
3. *record* — feed the outcome to pybreaker with ``with breaker.calling(): ...`` around a no-op
   (success) or a private marker exception (failure); pybreaker counts it and opens/closes itself.

Why not simply ``await`` inside ``breaker.calling()``? That does work lock-wise (``calling()`` releases
the lock before yielding to the block — checked against the 1.4.1 source and by test), but every way
out of that block is booked as a success or a failure: a cancelled request (``CancelledError``) would
be a failure, or a success if excluded, and an abandoned generator is booked as a failure when
garbage-collected. Recording only finished calls keeps cancellation neutral, as required.

Three things pybreaker does not do, added here:

* **one half-open trial**: pybreaker lets every call through while half-open; we admit exactly one
  and answer the others ``BreakerOpen`` until it finishes (a cancelled trial frees the slot);
* **stale outcomes are dropped**: a call admitted while closed that finishes after the breaker opened
  (or closed again) belongs to an old epoch and is not recorded, so a late success cannot close a
  breaker that a later failure opened;
* **monotonic reset timer**: the open→half-open flip uses ``time.monotonic`` (pybreaker compares
  wall-clock datetimes); we call ``half_open()`` ourselves, so pybreaker's own open-state check never
  runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pybreaker

T = TypeVar("T")

log = logging.getLogger(__name__)

CLOSED = pybreaker.STATE_CLOSED
OPEN = pybreaker.STATE_OPEN
HALF_OPEN = pybreaker.STATE_HALF_OPEN


class BreakerOpen(Exception):  # noqa: N818  (the name the service API uses)
    """The call was skipped: the breaker is open, or a half-open trial call is already in flight."""


class _FailureMarkerError(Exception):
    """Marker raised inside ``calling()`` so pybreaker books one failure (never leaves this module)."""


@dataclass(frozen=True, slots=True)
class _Ticket:
    epoch: int
    trial: bool


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, owner: AsyncCircuitBreaker) -> None:
        self._owner = owner

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        # pybreaker notifies before it writes the new state to its storage: use new_state, not cb.
        self._owner._on_transition(new_state.name)


class AsyncCircuitBreaker:
    """Skip a failing dependency fast; let one trial call through after ``reset_timeout_s``.

    Use from one event loop only (it is not thread-safe, by design: the loop is the serialisation).
    """

    def __init__(
        self,
        name: str,
        *,
        fail_max: int,
        reset_timeout_s: float,
        call_timeout_s: float,
        on_state_change: Callable[[str], None] | None = None,
    ) -> None:
        if fail_max < 1:
            raise ValueError("fail_max must be at least 1")
        if reset_timeout_s <= 0 or call_timeout_s <= 0:
            raise ValueError("reset_timeout_s and call_timeout_s must be positive")
        self.name = name
        self.call_timeout_s = float(call_timeout_s)
        self.reset_timeout_s = float(reset_timeout_s)
        self._on_state_change = on_state_change
        self._epoch = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        # throw_new_error_on_trip=False: when recording the failure that trips it, pybreaker re-raises
        # our marker instead of a CircuitBreakerError, so recording has one exception type to expect.
        self._cb = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            name=name,
            listeners=[_Listener(self)],
            throw_new_error_on_trip=False,
        )

    @property
    def state(self) -> str:
        """The state a call would meet now: "open" flips to "half-open" once the reset timeout passed."""
        current = self._cb.current_state
        if current == OPEN and self._reset_elapsed():
            return HALF_OPEN
        return current

    @property
    def fail_counter(self) -> int:
        """Consecutive failures recorded while closed."""
        return self._cb.fail_counter

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` if the breaker admits it, within ``call_timeout_s``.

        Raises ``BreakerOpen`` without calling ``fn`` when the call is not admitted, ``TimeoutError`` when
        it took too long (a failure), and whatever ``fn`` raised otherwise. ``CancelledError`` propagates
        and is not booked either way.
        """
        ticket = self._admit()
        try:
            async with asyncio.timeout(self.call_timeout_s):
                result = await fn()
        except Exception:
            self._record(ticket, failed=True)
            raise
        except BaseException:
            # Cancellation (or interpreter exit): no verdict on the dependency, only free the trial slot.
            if ticket.trial and ticket.epoch == self._epoch:
                self._trial_in_flight = False
            raise
        self._record(ticket, failed=False)
        return result

    # --- internals (all synchronous: nothing can interleave between their lines) -----------------

    def _reset_elapsed(self) -> bool:
        return time.monotonic() - self._opened_at >= self.reset_timeout_s

    def _admit(self) -> _Ticket:
        state = self.state
        if state == OPEN:
            raise BreakerOpen(f"circuit breaker {self.name!r} is open")
        if state == CLOSED:
            return _Ticket(self._epoch, trial=False)
        if self._trial_in_flight:
            raise BreakerOpen(f"circuit breaker {self.name!r} is half-open and its trial call is in flight")
        if self._cb.current_state == OPEN:
            self._cb.half_open()  # the lazy flip; notifies listeners and starts a new epoch
        self._trial_in_flight = True
        return _Ticket(self._epoch, trial=True)

    def _record(self, ticket: _Ticket, *, failed: bool) -> None:
        if ticket.epoch != self._epoch:
            return  # admitted under a state that has since changed: its outcome says nothing now
        if ticket.trial:
            self._trial_in_flight = False
        # Same epoch means pybreaker is still in the (closed or half-open) state we admitted under,
        # so calling() admits at once and only books the outcome.
        if not failed:
            with self._cb.calling():
                pass
            return
        try:
            with self._cb.calling():
                raise _FailureMarkerError
        except _FailureMarkerError:
            pass

    def _on_transition(self, new_state: str) -> None:
        self._epoch += 1
        self._trial_in_flight = False
        if new_state == OPEN:
            self._opened_at = time.monotonic()
        if self._on_state_change is not None:
            try:
                self._on_state_change(new_state)
            except Exception:
                # A broken metrics hook must not leave pybreaker half-way through a transition.
                log.exception("circuit breaker %r: state change listener failed", self.name)
