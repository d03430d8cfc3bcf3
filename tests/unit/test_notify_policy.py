"""What an attempt's answer means, the backoff between attempts, the signature, and the spool form of a
notification: pure functions, checked on their edges."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from ticket_triage.notify.outbox import Notification
from ticket_triage.notify.policy import backoff_seconds, clip, judge_status, retry_after_seconds
from ticket_triage.notify.signing import signature, verify

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert judge_status(status, retry_after=None, now=NOW).delivered


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_passing_troubles_are_retried(status: int) -> None:
    verdict = judge_status(status, retry_after="7", now=NOW, snippet="busy")
    assert not verdict.delivered and verdict.retryable
    assert verdict.retry_after_seconds == 7.0 and verdict.error == f"HTTP {status}: busy"


@pytest.mark.parametrize("status", [301, 302, 400, 401, 403, 404, 409, 410, 413, 422])
def test_refusals_are_not_retried(status: int) -> None:
    verdict = judge_status(status, retry_after="7", now=NOW)
    assert not verdict.delivered and not verdict.retryable
    assert verdict.error is not None and verdict.error.startswith(f"HTTP {status}")


def test_retry_after_as_seconds_or_a_date() -> None:
    assert retry_after_seconds("120", NOW) == 120.0
    assert retry_after_seconds(format_datetime(NOW + timedelta(seconds=90), usegmt=True), NOW) == 90.0
    assert retry_after_seconds(format_datetime(NOW - timedelta(hours=1), usegmt=True), NOW) == 0.0
    for unreadable in (None, "", "soon", "-5", "1.5"):
        assert retry_after_seconds(unreadable, NOW) is None


def test_backoff_doubles_with_jitter_and_stays_under_the_cap() -> None:
    rng = random.Random(7)
    for attempt, step in [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6), (5, 3.0), (40, 3.0), (10_000, 3.0)]:
        delays = [backoff_seconds(attempt, base=0.2, cap=3.0, rng=rng) for _ in range(200)]
        assert step / 2 <= min(delays) and max(delays) <= step
        assert max(delays) - min(delays) > step / 4  # spread out, not in lockstep


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    assert backoff_seconds(1, base=0.2, cap=3.0, retry_after=2.0) == 2.0
    assert backoff_seconds(1, base=0.2, cap=3.0, retry_after=3600.0) == 3.0
    assert 0.1 <= backoff_seconds(1, base=0.2, cap=3.0, retry_after=0.0) <= 0.2


def test_clip_makes_one_short_ascii_line() -> None:
    text = clip("line one\nline\ttwo ünïcode " + "x" * 2000)
    assert text.isascii() and "\n" not in text and len(text) <= 500
    assert text.startswith("line one line two \\xfcn\\xefcode")


def test_signature_round_trip_and_refusals() -> None:
    body = b'{"event":"prediction"}'
    header = signature("s3cret", 1_764_000_000, body)
    assert header.startswith("t=1764000000,v1=") and len(header.split("v1=")[1]) == 64
    assert verify("s3cret", header, body, now=1_764_000_100)
    assert not verify("s3cret", header, body, now=1_764_000_301)  # too old
    assert not verify("other", header, body, now=1_764_000_000)
    assert not verify("s3cret", header, body.replace(b"prediction", b"Prediction"), now=1_764_000_000)
    assert not verify("s3cret", "t=1764000000", body, now=1_764_000_000)
    assert not verify("s3cret", "garbage", body, now=1_764_000_000)


def test_a_notification_survives_the_spool_form() -> None:
    item = Notification("abc123", "zendesk:T-1", "prediction", {"a": [1, "ü"], "b": None}, NOW)
    assert Notification.from_json(json.loads(json.dumps(item.to_json()))) == item
    with pytest.raises(TypeError):
        Notification.from_json({**item.to_json(), "payload": [1, 2]})
