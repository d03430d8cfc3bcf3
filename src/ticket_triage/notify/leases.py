"""How delivery workers take outbox rows and record what became of them.

A worker claims due rows that head their ticket's line (no earlier pending row of the same
``ticket_key``; rows without a key stand alone) and leases them: ``lease_until`` keeps every other worker,
in this process or another sharing the database, off the row until the attempt is over. PostgreSQL
workers skip rows another claim has locked (``FOR UPDATE SKIP LOCKED``); SQLite serialises claims with
``BEGIN IMMEDIATE``.

Claiming counts the attempt (``attempts + 1``), and that number is the claim's token: an outcome is
recorded only while the row is still pending with the same count, so a worker whose lease ran out and
whose row was claimed again cannot overwrite the newer attempt's result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, exists, func, or_, select, update
from sqlalchemy.engine import Connection

from ticket_triage.notify.outbox import DEAD, DELIVERED, PENDING, NotificationRow
from ticket_triage.review.db import SQLITE_IMMEDIATE
from ticket_triage.review.models import as_utc

_TABLE = NotificationRow.__table__


@dataclass(frozen=True)
class Claimed:
    """A leased row; ``attempt`` is the number of this attempt (1 for the first)."""

    id: int
    prediction_id: str
    ticket_key: str | None
    event: str
    payload: dict[str, Any]
    attempt: int


@dataclass(frozen=True)
class Outcome:
    """What to record for an attempt: ``status`` is the row's new status (pending: try again at
    ``next_attempt_at``)."""

    status: str
    error: str | None = None
    next_attempt_at: datetime | None = None


def claim_due(engine: Engine, *, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]:
    """Lease up to ``limit`` due rows at the head of their ticket's line, oldest first."""
    if limit <= 0:
        return []
    now = as_utc(now)
    row, earlier = _TABLE, _TABLE.alias("earlier")
    held_up = exists().where(
        earlier.c.ticket_key == row.c.ticket_key,  # NULL keys compare unknown: never held up
        earlier.c.status == PENDING,
        earlier.c.id < row.c.id,
    )
    query = (
        select(row.c.id, row.c.prediction_id, row.c.ticket_key, row.c.event, row.c.payload, row.c.attempts)
        .where(
            row.c.status == PENDING,
            row.c.next_attempt_at <= now,
            or_(row.c.lease_until.is_(None), row.c.lease_until <= now),
            ~held_up,
        )
        .order_by(row.c.id)
        .limit(limit)
    )
    with engine.execution_options(**{SQLITE_IMMEDIATE: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=row)
        found = connection.execute(query).all()
        if not found:
            return []
        connection.execute(
            update(row)
            .where(row.c.id.in_([r.id for r in found]))
            .values(lease_until=as_utc(lease_until), attempts=row.c.attempts + 1)
        )
    return [Claimed(r.id, r.prediction_id, r.ticket_key, r.event, r.payload, r.attempts + 1) for r in found]


def record_outcomes(engine: Engine, results: Sequence[tuple[Claimed, Outcome]], now: datetime) -> int:
    """Store each attempt's outcome (one transaction); returns how many rows were still this claim's."""
    if not results:
        return 0
    changed = 0
    with engine.execution_options(**{SQLITE_IMMEDIATE: True}).begin() as connection:
        for claimed, outcome in results:
            changed += _record(connection, claimed, outcome, as_utc(now))
    return changed


def _record(connection: Connection, claimed: Claimed, outcome: Outcome, now: datetime) -> int:
    values: dict[str, Any] = {"status": outcome.status, "lease_until": None, "last_error": outcome.error}
    if outcome.status == DELIVERED:
        values["delivered_at"] = now
    elif outcome.status == PENDING:
        values["next_attempt_at"] = as_utc(outcome.next_attempt_at or now)
    elif outcome.status != DEAD:
        raise ValueError(f"unknown notification status {outcome.status!r}")
    result = connection.execute(
        update(_TABLE)
        .where(
            _TABLE.c.id == claimed.id,
            _TABLE.c.status == PENDING,
            _TABLE.c.attempts == claimed.attempt,
        )
        .values(**values)
    )
    return int(result.rowcount or 0)


def release(engine: Engine, claims: Sequence[Claimed]) -> None:
    """Give leases back without an outcome (a worker stopping mid-attempt): due again at once. The
    attempt stays counted: the receiver may have had it."""
    if not claims:
        return
    with engine.execution_options(**{SQLITE_IMMEDIATE: True}).begin() as connection:
        for claimed in claims:
            connection.execute(
                update(_TABLE)
                .where(
                    _TABLE.c.id == claimed.id,
                    _TABLE.c.status == PENDING,
                    _TABLE.c.attempts == claimed.attempt,
                )
                .values(lease_until=None)
            )


def pending_count(engine: Engine) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(_TABLE).where(_TABLE.c.status == PENDING)
        return int(connection.scalar(query) or 0)
