"""The audit table: one row per answered prediction, keyed by its ``prediction_id``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, Engine, Float, Index, String, delete, func, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ticket_triage.monitoring.drift import WindowRow
from ticket_triage.review.db import SQLITE_IMMEDIATE
from ticket_triage.review.models import Base, IdType, JSONType, UTCDateTime, as_utc


class AuditRow(Base):
    __tablename__ = "prediction_audit"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(String(64), nullable=False)
    predicted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    model_version: Mapped[str] = mapped_column(String(200), nullable=False)
    ticket_id: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(200), nullable=False)
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    priority: Mapped[str | None] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(16), nullable=False)
    cached: Mapped[bool] = mapped_column(Boolean, nullable=False)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    endpoint: Mapped[str] = mapped_column(String(32), nullable=False)
    signals: Mapped[dict[str, float] | None] = mapped_column(JSONType)

    __table_args__ = (
        Index("ux_prediction_audit_prediction_id", "prediction_id", unique=True),
        Index("ix_prediction_audit_predicted_at", "predicted_at"),
    )


@dataclass(frozen=True)
class AuditRecord:
    """What the service knows about one answer when it sends it."""

    prediction_id: str
    predicted_at: datetime
    model_version: str
    category: str
    confidence: float
    route: str
    cached: bool
    latency_ms: float
    endpoint: str
    ticket_id: str | None = None
    priority: str | None = None
    signals: dict[str, float] | None = None

    def row(self) -> dict[str, Any]:
        """Column values. Shallow on purpose: ``asdict`` would deep-copy every signals dict, which was
        three quarters of the writer's time per batch."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["predicted_at"] = as_utc(self.predicted_at)
        return values

    def to_json(self) -> dict[str, Any]:
        data = self.row()
        data["predicted_at"] = data["predicted_at"].isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditRecord:
        return cls(**{**data, "predicted_at": datetime.fromisoformat(data["predicted_at"])})


def insert_audit(engine: Engine, records: Sequence[AuditRecord], *, skip_existing: bool = True) -> int:
    """Insert the records in order, in one transaction (one executemany: no ORM objects, so the writer
    thread holds the interpreter lock as briefly as it can). Returns how many were new.

    ``skip_existing`` first drops the ids already stored: that is what makes a replay after a half-known
    outcome (the commit may or may not have happened when the connection dropped) write each record
    exactly once. Fresh records from the request path have new ids and skip that query.
    """
    if not records:
        return 0
    with engine.execution_options(**{SQLITE_IMMEDIATE: True}).begin() as connection:
        known: set[str] = set()
        if skip_existing:
            keys = list({r.prediction_id for r in records})
            known = set(
                connection.scalars(select(AuditRow.prediction_id).where(AuditRow.prediction_id.in_(keys)))
            )
        rows = []
        for record in records:
            if record.prediction_id in known:
                continue
            known.add(record.prediction_id)
            rows.append(record.row())
        if rows:
            connection.execute(insert(AuditRow), rows)
    return len(rows)


def delete_older_than(engine: Engine, cutoff: datetime) -> int:
    """Retention: drop audit rows predicted before ``cutoff``; returns how many went."""
    with Session(engine.execution_options(**{SQLITE_IMMEDIATE: True})) as session, session.begin():
        result = session.execute(delete(AuditRow).where(AuditRow.predicted_at < as_utc(cutoff)))
    return int(getattr(result, "rowcount", 0) or 0)


def retention_cutoff(now: datetime, days: int) -> datetime | None:
    return None if days <= 0 else as_utc(now) - timedelta(days=days)


def recent_window(engine: Engine, model_version: str, size: int) -> list[WindowRow]:
    """The latest ``size`` predictions of this model version: the drift window, shared by every worker
    because every worker writes here."""
    query = (
        select(AuditRow.category, AuditRow.confidence, AuditRow.signals)
        .where(AuditRow.model_version == model_version)
        .order_by(AuditRow.id.desc())
        .limit(size)
    )
    with Session(engine) as session:
        return [
            WindowRow(category, float(confidence), signals)
            for category, confidence, signals in session.execute(query)
        ]


def count_audit(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(AuditRow)) or 0)
