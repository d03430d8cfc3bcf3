"""The ticket ledger: which answer each version of a helpdesk ticket got, so a retry gets the same one.

Helpdesks retry webhooks they think failed, and a broker redelivers what a dead consumer never acked.
Neither must make a second decision: the ledger keeps, per (source, ticket id, content digest), the answer
that went out first. The digest is ``canonical.answer_key`` (the canonical model inputs and the model
version), so a delivery that changes nothing the model reads is the same version; an edit of subject or
description is a new one, and so is the same ticket sent again once a new model is live (a re-score).

Claiming is insert-if-absent on a unique index: two deliveries of one version racing each other both see
the first answer stored, and only its owner queues review items, audits and notifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Index, String, and_, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from ticket_triage.review.db import SQLITE_IMMEDIATE
from ticket_triage.review.models import Base, IdType, JSONType, UTCDateTime, as_utc

#: The ``source`` of tickets sent in the ``/predict`` body (HTTP or broker): one id space per helpdesk.
API_SOURCE = "api"


class TicketAnswerRow(Base):
    __tablename__ = "ticket_answers"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    ticket_id: Mapped[str] = mapped_column(String(200), nullable=False)
    content_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    prediction_id: Mapped[str] = mapped_column(String(64), nullable=False)
    answer: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        Index("ux_ticket_answers_version", "source", "ticket_id", "content_digest", unique=True),
        Index("ix_ticket_answers_answered_at", "answered_at"),
    )


@dataclass(frozen=True)
class TicketVersion:
    source: str
    ticket_id: str
    content_digest: str


class TicketLedger:
    """Synchronous (called from a worker thread); each method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._write_engine = engine.execution_options(**{SQLITE_IMMEDIATE: True})

    def find(self, versions: Sequence[TicketVersion]) -> dict[TicketVersion, dict[str, Any]]:
        """The answers already given to any of these versions."""
        if not versions:
            return {}
        with Session(self._engine) as session:
            return _answers(session, versions)

    def claim(
        self, answers: Sequence[tuple[TicketVersion, dict[str, Any]]], now: datetime
    ) -> dict[TicketVersion, dict[str, Any]]:
        """Store each answer unless its version has one; returns the answer kept for every version given.

        An answer is the caller's own exactly when the returned one has its ``prediction_id``.
        """
        if not answers:
            return {}
        first: dict[TicketVersion, dict[str, Any]] = {}
        for version, answer in answers:
            first.setdefault(version, answer)
        with Session(self._write_engine) as session, session.begin():
            insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
            rows = [
                {
                    "source": v.source,
                    "ticket_id": v.ticket_id,
                    "content_digest": v.content_digest,
                    "prediction_id": str(a["prediction_id"]),
                    "answer": a,
                    "answered_at": as_utc(now),
                }
                for v, a in first.items()
            ]
            session.execute(
                insert(TicketAnswerRow.__table__)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["source", "ticket_id", "content_digest"])
            )
            return _answers(session, list(first))

    def set_review_ids(self, review_ids: Sequence[tuple[TicketVersion, str, int]]) -> None:
        """Record the review item each claimed answer got (version, prediction_id, review_id), so a retry
        answers with it too."""
        if not review_ids:
            return
        with Session(self._write_engine) as session, session.begin():
            for version, prediction_id, review_id in review_ids:
                row = session.scalars(
                    select(TicketAnswerRow).where(
                        _is(version), TicketAnswerRow.prediction_id == prediction_id
                    )
                ).one_or_none()
                if row is not None:
                    row.answer = {**row.answer, "review_id": review_id}

    def delete_older_than(self, cutoff: datetime) -> int:
        """Retention (as the audit log's): a ticket older than this may be answered afresh."""
        with Session(self._write_engine) as session, session.begin():
            result = session.execute(
                delete(TicketAnswerRow).where(TicketAnswerRow.answered_at < as_utc(cutoff))
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def count(self, source: str | None = None) -> int:
        """Stored answers (of one source); what the broker test reads as "stored predictions"."""
        query = select(func.count(TicketAnswerRow.id))
        if source is not None:
            query = query.where(TicketAnswerRow.source == source)
        with Session(self._engine) as session:
            return int(session.scalar(query) or 0)


def _is(version: TicketVersion) -> Any:
    return and_(
        TicketAnswerRow.source == version.source,
        TicketAnswerRow.ticket_id == version.ticket_id,
        TicketAnswerRow.content_digest == version.content_digest,
    )


def _answers(session: Session, versions: Sequence[TicketVersion]) -> dict[TicketVersion, dict[str, Any]]:
    found: dict[TicketVersion, dict[str, Any]] = {}
    for start in range(0, len(versions), 200):
        chunk = versions[start : start + 200]
        rows = session.execute(
            select(
                TicketAnswerRow.source,
                TicketAnswerRow.ticket_id,
                TicketAnswerRow.content_digest,
                TicketAnswerRow.answer,
            ).where(or_(*(_is(v) for v in chunk)))
        )
        for source, ticket_id, digest, answer in rows:
            found[TicketVersion(source, ticket_id, digest)] = dict(answer)
    return found
