"""Tables of the review queue and the value objects the store hands out.

The status of an item is not a column: it depends on *now* (an expired lease reads as pending), so it is
computed from ``resolved_at`` and ``lease_expires_at`` whenever a row is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

PENDING = "pending"
CLAIMED = "claimed"
RESOLVED = "resolved"
STATUSES = (PENDING, CLAIMED, RESOLVED)

#: Claim order: smaller first. "urgent" and "critical" are synonyms across datasets; "normal" is "medium".
#: Any other value (or none) sorts after every known priority, then by age like the rest.
PRIORITY_RANK: dict[str, int] = {
    "critical": 0,
    "urgent": 0,
    "high": 1,
    "medium": 2,
    "normal": 2,
    "low": 3,
}
UNKNOWN_PRIORITY_RANK = 9


def priority_rank(priority: str | None) -> int:
    """Rank of a predicted priority; stored with the row so the claim query orders on an index."""
    if priority is None:
        return UNKNOWN_PRIORITY_RANK
    return PRIORITY_RANK.get(priority.strip().lower(), UNKNOWN_PRIORITY_RANK)


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive time is read as UTC (the API's rule for ticket times)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Always aware UTC in Python. PostgreSQL keeps ``timestamptz``; SQLite has no zones, so it stores
    naive UTC text, which also keeps its string comparison in time order."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-numbers an INTEGER PRIMARY KEY, not a BIGINT one.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


#: An item nobody has answered yet (pending or claimed): the rows the open-key index covers.
OPEN_ITEM = text("resolved_at IS NULL")


class ReviewRow(Base):
    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    #: The answer's ``prediction_id``: unique, so a replayed spool never queues an item twice.
    prediction_id: Mapped[str | None] = mapped_column(String(64))
    # --- the ticket ---
    ticket_id: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    ticket_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    channel: Mapped[str | None] = mapped_column(String(200))
    customer_tier: Mapped[str | None] = mapped_column(String(200))
    urgency: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(200))
    # "metadata" is reserved on declarative classes; the column keeps the plain name.
    ticket_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)
    # --- the model's answer ---
    top_labels: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)
    predicted_category: Mapped[str] = mapped_column(String(200), nullable=False)
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    predicted_priority: Mapped[str | None] = mapped_column(String(200))
    #: The model's tags (models trained with --tags), a JSON list; None without.
    predicted_tags: Mapped[list[str] | None] = mapped_column(JSONType)
    priority_rank: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    model_version: Mapped[str] = mapped_column(String(200), nullable=False)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # --- the lease ---
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # --- the reviewer's answer ---
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_category: Mapped[str | None] = mapped_column(String(200))
    resolved_priority: Mapped[str | None] = mapped_column(String(200))
    #: The reviewer's tags, a JSON list; None when the answer said nothing about tags.
    resolved_tags: Mapped[list[str] | None] = mapped_column(JSONType)
    note: Mapped[str | None] = mapped_column(Text)
    #: ``canonical.review_key`` of the ticket and model version: at most one open item per key.
    review_key: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        # The claim scan: open items in claim order.
        Index("ix_review_items_queue", "resolved_at", "priority_rank", "enqueued_at", "id"),
        Index("ix_review_items_enqueued_at", "enqueued_at"),
        Index("ix_review_items_predicted_category", "predicted_category"),
        Index("ux_review_items_prediction_id", "prediction_id", unique=True),
        Index(
            "ux_review_items_open_review_key",
            "review_key",
            unique=True,
            sqlite_where=OPEN_ITEM,
            postgresql_where=OPEN_ITEM,
        ),
    )


class ReviewEventRow(Base):
    """Audit trail of state changes (added, claimed, released, resolved); one small insert per change."""

    __tablename__ = "review_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("review_items.id", ondelete="CASCADE"), nullable=False, index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    actor: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(20), nullable=False)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


@dataclass(frozen=True)
class NewReviewItem:
    """A prediction under the routing threshold, as the service hands it over.

    ``top_labels`` are ``(label, probability)`` pairs, most likely first.
    """

    predicted_category: str
    confidence: float
    model_version: str
    top_labels: tuple[tuple[str, float], ...] = ()
    predicted_priority: str | None = None
    ticket_id: str | None = None
    subject: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    channel: str | None = None
    customer_tier: str | None = None
    urgency: str | None = None
    language: str | None = None
    metadata: dict[str, Any] | None = field(default=None, hash=False)
    #: Ties the item to the answer and its audit record; the key that makes replays idempotent.
    prediction_id: str | None = None
    #: When the prediction was made; a replayed item keeps its place in the queue. None: the store's now.
    enqueued_at: datetime | None = None
    #: ``canonical.review_key``: while an item with this key is open, adding another returns that item.
    #: None: never merged (items spooled before keys existed, or added by hand).
    review_key: str | None = None
    #: The model's tags for the ticket, most likely first; None for a model without tags.
    predicted_tags: tuple[str, ...] | None = None
    #: A new version of a ticket whose open item has this ``review_key`` (``canonical.ticket_review_key``):
    #: that item takes this item's text and answer (keeping its place and any claim) instead of being
    #: returned unchanged.
    updates_open: bool = False


@dataclass(frozen=True)
class ReviewItem:
    """One queue item as read at ``now``; ``status`` already accounts for an expired lease."""

    id: int
    status: str
    predicted_category: str
    confidence: float
    model_version: str
    top_labels: tuple[tuple[str, float], ...]
    predicted_priority: str | None
    enqueued_at: datetime
    ticket_id: str | None
    subject: str | None
    description: str | None
    created_at: datetime | None
    channel: str | None
    customer_tier: str | None
    urgency: str | None
    language: str | None
    metadata: dict[str, Any] | None = field(hash=False)
    claimed_by: str | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolved_category: str | None
    resolved_priority: str | None
    note: str | None
    predicted_tags: tuple[str, ...] | None = None
    resolved_tags: tuple[str, ...] | None = None

    @property
    def final_priority(self) -> str | None:
        """The reviewer's priority when given, else the model's (what training learns from)."""
        return self.resolved_priority if self.resolved_priority is not None else self.predicted_priority


def status_at(row: ReviewRow, now: datetime) -> str:
    if row.resolved_at is not None:
        return RESOLVED
    if row.claimed_by is not None and row.lease_expires_at is not None and row.lease_expires_at > now:
        return CLAIMED
    return PENDING


def to_item(row: ReviewRow, now: datetime) -> ReviewItem:
    status = status_at(row, now)
    held = status == CLAIMED
    return ReviewItem(
        id=row.id,
        status=status,
        predicted_category=row.predicted_category,
        confidence=row.confidence,
        model_version=row.model_version,
        top_labels=tuple((str(x["label"]), float(x["probability"])) for x in row.top_labels or ()),
        predicted_priority=row.predicted_priority,
        enqueued_at=row.enqueued_at,
        ticket_id=row.ticket_id,
        subject=row.subject,
        description=row.description,
        created_at=row.ticket_created_at,
        channel=row.channel,
        customer_tier=row.customer_tier,
        urgency=row.urgency,
        language=row.language,
        metadata=row.ticket_metadata,
        # An expired lease is nobody's: show it as such so callers cannot mistake it for a live claim.
        claimed_by=row.claimed_by if held else None,
        claimed_at=row.claimed_at if held else None,
        lease_expires_at=row.lease_expires_at if held else None,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        resolved_category=row.resolved_category,
        resolved_priority=row.resolved_priority,
        note=row.note,
        predicted_tags=None if row.predicted_tags is None else tuple(row.predicted_tags),
        resolved_tags=None if row.resolved_tags is None else tuple(row.resolved_tags),
    )
