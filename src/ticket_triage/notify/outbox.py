"""The outbox table: one row per routing decision to notify, written by the durable writer's thread.

A row is ``pending`` until the receiver accepts it (``delivered``) or it cannot be delivered (``dead``,
with the reason in ``last_error``). Rows are inserted in the order the decisions were made, so ``id`` is
the delivery order. Operators read and re-queue rows here (the admin endpoint); workers take them through
:mod:`ticket_triage.notify.leases`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Index, Integer, String, Text, delete, func, insert, select, text, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ticket_triage.review.db import SQLITE_IMMEDIATE
from ticket_triage.review.models import Base, IdType, JSONType, UTCDateTime, as_utc

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
STATUSES = (PENDING, DELIVERED, DEAD)

_PENDING_ONLY = text("status = 'pending'")


class NotificationRow(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(String(64), nullable=False)
    ticket_key: Mapped[str | None] = mapped_column(String(300))
    event: Mapped[str] = mapped_column(String(32), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ux_notifications_prediction_id", "prediction_id", unique=True),
        Index(
            "ix_notifications_pending_due",
            "next_attempt_at",
            "id",
            sqlite_where=_PENDING_ONLY,
            postgresql_where=_PENDING_ONLY,
        ),
        Index(
            "ix_notifications_pending_ticket",
            "ticket_key",
            "id",
            sqlite_where=_PENDING_ONLY,
            postgresql_where=_PENDING_ONLY,
        ),
        Index("ix_notifications_status", "status", "id"),
    )


@dataclass(frozen=True)
class Notification:
    """One decision to send. ``ticket_key`` orders a ticket's decisions (None: no order to keep);
    ``payload`` is the JSON body as the receiver gets it."""

    prediction_id: str
    ticket_key: str | None
    event: str
    payload: dict[str, Any]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The spool's form of it (the payload as it is: the spool writes JSON anyway)."""
        return {
            "prediction_id": self.prediction_id,
            "ticket_key": self.ticket_key,
            "event": self.event,
            "payload": self.payload,
            "created_at": as_utc(self.created_at).isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notification:
        payload = data["payload"]
        if not isinstance(payload, dict):
            raise TypeError(f"notification payload must be a JSON object, not {type(payload).__name__}")
        return cls(
            prediction_id=str(data["prediction_id"]),
            ticket_key=None if data.get("ticket_key") is None else str(data["ticket_key"]),
            event=str(data["event"]),
            payload=payload,
            created_at=datetime.fromisoformat(data["created_at"]),
        )

    def row(self) -> dict[str, Any]:
        """A new pending row, due at once (its decision time is in the past by the time it is stored)."""
        created = as_utc(self.created_at)
        return {
            "prediction_id": self.prediction_id,
            "ticket_key": self.ticket_key,
            "event": self.event,
            "payload": self.payload,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": created,
            "created_at": created,
        }


def insert_notifications(engine: Engine, items: Sequence[Notification], *, skip_existing: bool) -> int:
    """Insert in order in one transaction; returns how many were new.

    ``skip_existing`` first drops prediction ids already stored (and repeats within ``items``): a spool
    replay after a commit whose outcome was unknown then inserts each decision exactly once. Without it a
    repeated id fails the batch with an IntegrityError, which the writer treats as that record's fault."""
    if not items:
        return 0
    with engine.execution_options(**{SQLITE_IMMEDIATE: True}).begin() as connection:
        known: set[str] = set()
        if skip_existing:
            keys = list({item.prediction_id for item in items})
            known = set(
                connection.scalars(
                    select(NotificationRow.prediction_id).where(NotificationRow.prediction_id.in_(keys))
                )
            )
        rows = []
        for item in items:
            if skip_existing and item.prediction_id in known:
                continue
            known.add(item.prediction_id)
            rows.append(item.row())
        if rows:
            connection.execute(insert(NotificationRow), rows)
    return len(rows)


@dataclass(frozen=True)
class OutboxEntry:
    """A row as operators see it: everything but the payload."""

    id: int
    prediction_id: str
    ticket_key: str | None
    event: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


_ENTRY_COLUMNS = (
    NotificationRow.id,
    NotificationRow.prediction_id,
    NotificationRow.ticket_key,
    NotificationRow.event,
    NotificationRow.status,
    NotificationRow.attempts,
    NotificationRow.next_attempt_at,
    NotificationRow.last_error,
    NotificationRow.created_at,
    NotificationRow.delivered_at,
)


def status_counts(engine: Engine) -> dict[str, int]:
    """Rows per status, every status present (zero when none)."""
    query = select(NotificationRow.status, func.count()).group_by(NotificationRow.status)
    with engine.connect() as connection:
        found = {str(status): int(n) for status, n in connection.execute(query)}
    return {status: found.get(status, 0) for status in STATUSES}


def list_entries(engine: Engine, status: str | None, limit: int) -> list[OutboxEntry]:
    """The latest ``limit`` rows (of one status, or any), newest first."""
    query = select(*_ENTRY_COLUMNS).order_by(NotificationRow.id.desc()).limit(limit)
    if status is not None:
        query = query.where(NotificationRow.status == status)
    with engine.connect() as connection:
        return [OutboxEntry(*row) for row in connection.execute(query)]


class NotificationNotFoundError(LookupError):
    pass


class NotDeadError(RuntimeError):
    """Only a dead row can be sent again: a pending one is on its way, a delivered one arrived."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the notification is {status}, not dead")
        self.status = status


def requeue_dead(engine: Engine, notification_id: int, now: datetime) -> OutboxEntry:
    """A dead row back to pending, due now, with its attempts reset; the last error stays until the next
    attempt replaces it. It queues behind nothing: later rows of its ticket may already have gone."""
    table = NotificationRow.__table__
    with engine.execution_options(**{SQLITE_IMMEDIATE: True}).begin() as connection:
        locked = select(NotificationRow.status).where(NotificationRow.id == notification_id)
        if connection.dialect.name == "postgresql":
            locked = locked.with_for_update()
        status = connection.scalar(locked)
        if status is None:
            raise NotificationNotFoundError(f"no notification with id {notification_id}")
        if status != DEAD:
            raise NotDeadError(status)
        connection.execute(
            update(table)
            .where(table.c.id == notification_id)
            .values(status=PENDING, attempts=0, next_attempt_at=as_utc(now), lease_until=None)
        )
        row = connection.execute(select(*_ENTRY_COLUMNS).where(NotificationRow.id == notification_id)).one()
    return OutboxEntry(*row)


def delete_delivered_before(engine: Engine, cutoff: datetime) -> int:
    """Retention: delivered rows older than ``cutoff`` go; pending and dead ones stay until handled."""
    with Session(engine.execution_options(**{SQLITE_IMMEDIATE: True})) as session, session.begin():
        result = session.execute(
            delete(NotificationRow).where(
                NotificationRow.status == DELIVERED, NotificationRow.delivered_at < as_utc(cutoff)
            )
        )
    return int(getattr(result, "rowcount", 0) or 0)
