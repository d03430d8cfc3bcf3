"""What an attempt's answer means, and when to try again.

2xx is delivered. A network failure, a timeout, 408, 425, 429 and 5xx are passing troubles: the row is
retried after an exponential backoff (``base * 2**(attempt-1)``, capped) with jitter, or later when the
receiver says so in ``Retry-After`` (capped as well). Any other answer (a 4xx, or a redirect, which the
notifier does not follow) is the receiver refusing this request: sending it again cannot help, so the row
is dead at once. After ``max_attempts`` failed attempts a row is dead too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({408, 425, 429})
_ERROR_CHARS = 500


@dataclass(frozen=True)
class Verdict:
    """``delivered``, or the failure's text and whether another attempt may succeed."""

    delivered: bool
    retryable: bool = False
    error: str | None = None
    retry_after_seconds: float | None = None


def judge_status(status: int, *, retry_after: str | None, now: datetime, snippet: str = "") -> Verdict:
    """The verdict on an HTTP answer; ``snippet`` (the start of its body, already made safe) goes into
    the error to say why the receiver refused."""
    if 200 <= status < 300:
        return Verdict(delivered=True)
    said = f": {snippet}" if snippet else ""
    if status in RETRYABLE_STATUSES or 500 <= status < 600:
        wait = retry_after_seconds(retry_after, now)
        return Verdict(False, retryable=True, error=f"HTTP {status}{said}", retry_after_seconds=wait)
    if 300 <= status < 400:
        return Verdict(
            False, error=f"HTTP {status}: redirects are not followed; point notify_url at the target"
        )
    return Verdict(False, error=f"HTTP {status} (refused; not retried){said}")


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_seconds(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Delay before the attempt after ``attempt``: the exponential step with "equal jitter" (between half
    and all of it, so rows failing together spread out), never under the receiver's ``Retry-After`` and
    never over ``cap``."""
    step = min(cap, base * 2 ** min(max(attempt - 1, 0), 62))
    delay = step / 2 + (rng or random).uniform(0, step / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def clip(text: str) -> str:
    """One ASCII line of at most a few hundred characters, for ``last_error`` and logs."""
    flat = " ".join(text.split())
    flat = flat.encode("ascii", "backslashreplace").decode("ascii")
    return flat if len(flat) <= _ERROR_CHARS else flat[: _ERROR_CHARS - 3] + "..."
