"""The review queue: low-confidence predictions wait here until a person confirms or corrects them.

A claim is a lease: the item belongs to one reviewer until ``lease_expires_at``; after that it reads as
pending and anyone may claim it again, so a reviewer who walks away does not strand work. Every time
comparison uses the store's clock (injectable for tests), never the database server's.

Why two claims can never return the same item:

* PostgreSQL: the claim is one ``UPDATE ... WHERE id = (SELECT id ... ORDER BY ... LIMIT 1 FOR UPDATE
  SKIP LOCKED) RETURNING``. A row another transaction is claiming is locked, so the sub-select skips it
  instead of waiting; a row whose claim committed in the meantime is re-checked against the WHERE clause
  under READ COMMITTED and no longer qualifies (its lease is live). Different claimers thus pick different
  rows without blocking each other.
* SQLite has no row locks (``FOR UPDATE`` renders as nothing there). Every write transaction of this store
  starts with ``BEGIN IMMEDIATE``, which takes the database's single write lock before reading anything,
  so the same statement runs fully serialised: the next claimer waits (busy timeout) and then reads the
  committed claim. WAL mode keeps plain reads from waiting behind it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ticket_triage.data.schema import LIST_SEPARATOR
from ticket_triage.review.db import SQLITE_IMMEDIATE
from ticket_triage.review.models import (
    CLAIMED,
    OPEN_ITEM,
    PENDING,
    RESOLVED,
    STATUSES,
    NewReviewItem,
    ReviewEventRow,
    ReviewItem,
    ReviewRow,
    as_utc,
    priority_rank,
    to_item,
)

_MAX_NAME = 200
MAX_LIST_LIMIT = 1000
#: Tries of one keyed insert; another try is needed only when the open item it met was resolved meanwhile.
_OPEN_KEY_ATTEMPTS = 5
#: What a newer version of a ticket replaces in its open item (``NewReviewItem.updates_open``).
_REFRESHED = (
    "prediction_id",
    "subject",
    "description",
    "ticket_created_at",
    "channel",
    "customer_tier",
    "urgency",
    "language",
    "ticket_metadata",
    "top_labels",
    "predicted_category",
    "confidence",
    "predicted_priority",
    "predicted_tags",
    "priority_rank",
    "model_version",
)


class ReviewError(Exception):
    """Base of every refusal of the review store."""


class ReviewNotFoundError(ReviewError):
    def __init__(self, item_id: int) -> None:
        super().__init__(f"review item {item_id} does not exist")
        self.item_id = item_id


class NotLeaseHolderError(ReviewError):
    """The reviewer holds no live lease on the item (never claimed it, it expired, or someone else has it)."""

    def __init__(self, item_id: int, reviewer: str, reason: str) -> None:
        super().__init__(f"reviewer {reviewer!r} holds no lease on review item {item_id}: {reason}")
        self.item_id = item_id
        self.reviewer = reviewer


class ResolveConflictError(ReviewError):
    """The item is already resolved with a different answer (or by someone else)."""

    def __init__(self, item_id: int, reviewer: str, reason: str) -> None:
        super().__init__(f"review item {item_id} cannot be resolved by {reviewer!r}: {reason}")
        self.item_id = item_id
        self.reviewer = reviewer


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > _MAX_NAME:
        raise ValueError(f"{what} is longer than {_MAX_NAME} characters")
    return value


class ReviewStore:
    """Synchronous (the service calls it from a worker thread); each method is one short transaction."""

    def __init__(
        self, engine: Engine, *, lease_seconds: int, clock: Callable[[], datetime] | None = None
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self._engine = engine
        # Writes take SQLite's write lock up front (see the module docstring); no effect on PostgreSQL.
        self._write_engine = engine.execution_options(**{SQLITE_IMMEDIATE: True})
        self._lease = timedelta(seconds=lease_seconds)
        self._clock = clock or _utc_now

    @property
    def lease_seconds(self) -> int:
        return int(self._lease.total_seconds())

    def _now(self) -> datetime:
        return as_utc(self._clock())

    def _read(self) -> Session:
        return Session(self._engine, expire_on_commit=False)

    def _write(self) -> Session:
        return Session(self._write_engine, expire_on_commit=False)

    # --- writes ------------------------------------------------------------------------------------

    def add_items(self, items: Sequence[NewReviewItem], *, skip_existing: bool = False) -> list[int]:
        """Queue all of them or none; ids in the order given.

        An item with a ``review_key`` is not added while an open (pending or claimed) item has that key,
        nor twice within ``items``: it gets that item's id. The database holds the rule (a unique index on
        the key of open items), so two writers adding the same ticket at once still add one item.

        With ``skip_existing``, an item whose ``prediction_id`` is already queued is not added again and
        its existing id is returned: replaying a spool twice, or after a write whose commit was in doubt,
        queues every item exactly once.
        """
        if not items:
            return []
        now = self._now()
        with self._write() as session, session.begin():
            known: dict[str, int] = {}
            if skip_existing:
                known = self._ids_by_prediction(session, [i.prediction_id for i in items if i.prediction_id])
            open_keys = self._open_ids_by_key(session, [i.review_key for i in items if i.review_key])
            ids: dict[int, int] = {}
            same_as: dict[int, int] = {}  # position -> earlier position in ``items`` it repeats
            first_of: dict[tuple[str, str], int] = {}
            plain: dict[int, ReviewRow] = {}
            for i, item in enumerate(items):
                pid, key = item.prediction_id, item.review_key
                if pid is not None and pid in known:
                    ids[i] = known[pid]
                elif key is not None and key in open_keys:
                    ids[i] = open_keys[key]
                    if item.updates_open:
                        self._refresh_open(session, ids[i], item, now)
                elif skip_existing and pid is not None and ("p", pid) in first_of:
                    same_as[i] = first_of[("p", pid)]
                elif key is not None and ("k", key) in first_of:
                    same_as[i] = first_of[("k", key)]
                else:
                    if pid is not None:
                        first_of.setdefault(("p", pid), i)
                    if key is not None:
                        first_of[("k", key)] = i
                        ids[i] = self._insert_open(session, self._new_row(item, now), now)
                        if item.updates_open:  # another writer's item won the key meanwhile
                            self._refresh_open(session, ids[i], item, now)
                    else:
                        plain[i] = self._new_row(item, now)
            session.add_all(plain.values())
            session.flush()
            ids.update({i: row.id for i, row in plain.items()})
            session.add_all(
                ReviewEventRow(item_id=row.id, at=now, actor=None, action="added", detail=None)
                for row in plain.values()
            )
        return [ids[same_as.get(i, i)] for i in range(len(items))]

    @staticmethod
    def _new_row(item: NewReviewItem, now: datetime) -> ReviewRow:
        """A row not yet in any session (``_insert_open`` reads its values)."""
        _name(item.predicted_category, "predicted_category")
        _name(item.model_version, "model_version")
        return ReviewRow(
            prediction_id=item.prediction_id,
            ticket_id=None if item.ticket_id is None else str(item.ticket_id),
            subject=item.subject,
            description=item.description,
            ticket_created_at=None if item.created_at is None else as_utc(item.created_at),
            channel=item.channel,
            customer_tier=item.customer_tier,
            urgency=item.urgency,
            language=item.language,
            ticket_metadata=None if item.metadata is None else dict(item.metadata),
            top_labels=[{"label": str(label), "probability": float(p)} for label, p in item.top_labels],
            predicted_category=item.predicted_category,
            confidence=float(item.confidence),
            predicted_priority=item.predicted_priority,
            predicted_tags=None if item.predicted_tags is None else [str(t) for t in item.predicted_tags],
            priority_rank=priority_rank(item.predicted_priority),
            model_version=item.model_version,
            enqueued_at=now if item.enqueued_at is None else as_utc(item.enqueued_at),
            review_key=item.review_key,
        )

    @staticmethod
    def _ids_by_prediction(session: Session, prediction_ids: list[str]) -> dict[str, int]:
        if not prediction_ids:
            return {}
        found = session.execute(
            select(ReviewRow.prediction_id, ReviewRow.id).where(ReviewRow.prediction_id.in_(prediction_ids))
        )
        return {str(pid): int(item_id) for pid, item_id in found}

    @staticmethod
    def _open_ids_by_key(session: Session, keys: list[str]) -> dict[str, int]:
        if not keys:
            return {}
        found = session.execute(
            select(ReviewRow.review_key, ReviewRow.id).where(
                ReviewRow.review_key.in_(keys), ReviewRow.resolved_at.is_(None)
            )
        )
        return {str(key): int(item_id) for key, item_id in found}

    @staticmethod
    def _insert_open(session: Session, row: ReviewRow, now: datetime) -> int:
        """Insert a keyed item unless an open item has its key; the id of whichever item is open.

        ``ON CONFLICT DO NOTHING`` on the open-key index: when another transaction inserts the same key
        first, PostgreSQL waits for it to commit and then skips the row; SQLite never gets there (its write
        transactions run one at a time), but the statement is the same. The row skipped, the open item is
        read back; if it was resolved in between, the insert is tried again.
        """
        values = {
            attr.columns[0]: getattr(row, attr.key)
            for attr in ReviewRow.__mapper__.column_attrs
            if attr.key != "id"
        }
        insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = (
            insert(ReviewRow.__table__)
            .values(values)
            .on_conflict_do_nothing(index_elements=[ReviewRow.review_key], index_where=OPEN_ITEM)
            .returning(ReviewRow.id)
        )
        for _ in range(_OPEN_KEY_ATTEMPTS):
            new_id = session.execute(statement).scalar_one_or_none()
            if new_id is not None:
                session.add(ReviewEventRow(item_id=new_id, at=now, actor=None, action="added", detail=None))
                return int(new_id)
            found = ReviewStore._open_ids_by_key(session, [str(row.review_key)])
            if found:
                return found[str(row.review_key)]
        raise RuntimeError(f"review key {row.review_key} kept changing hands; retry the write")

    @staticmethod
    def _refresh_open(session: Session, item_id: int, item: NewReviewItem, now: datetime) -> None:
        """An open item takes a newer version of its ticket: text, metadata and the model's answer.

        Its place in the queue (``enqueued_at``) and any live claim stay: the reviewer holding it sees the
        current ticket when the page reloads it. An item already carrying this answer is left alone, so a
        replayed spool line changes nothing.
        """
        row = session.get(ReviewRow, item_id, with_for_update=True)
        if row is None or row.resolved_at is not None or row.prediction_id == item.prediction_id:
            return
        fresh = ReviewStore._new_row(item, now)
        for name in _REFRESHED:
            setattr(row, name, getattr(fresh, name))
        session.add(
            ReviewEventRow(
                item_id=row.id,
                at=now,
                actor=None,
                action="updated",
                detail={"prediction_id": item.prediction_id, "model_version": item.model_version},
            )
        )

    def claim(self, reviewer: str) -> ReviewItem | None:
        """Lease the most urgent, then oldest, claimable item to ``reviewer``; None when nothing waits."""
        _name(reviewer, "reviewer")
        now = self._now()
        next_id = (
            select(ReviewRow.id)
            .where(_claimable(now))
            .order_by(ReviewRow.priority_rank, ReviewRow.enqueued_at, ReviewRow.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            update(ReviewRow)
            .where(ReviewRow.id == next_id)
            .values(claimed_by=reviewer, claimed_at=now, lease_expires_at=now + self._lease)
            .returning(ReviewRow)
            .execution_options(synchronize_session=False)
        )
        with self._write() as session, session.begin():
            row = session.scalars(statement).one_or_none()
            if row is None:
                return None
            session.add(
                ReviewEventRow(
                    item_id=row.id,
                    at=now,
                    actor=reviewer,
                    action="claimed",
                    detail={"lease_expires_at": row.lease_expires_at.isoformat()},
                )
            )
            return to_item(row, now)

    def resolve(
        self,
        item_id: int,
        reviewer: str,
        category: str,
        priority: str | None = None,
        note: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> ReviewItem:
        """Record the reviewer's answer. Repeating the same answer (same reviewer, category, priority and
        tags) returns the item unchanged, so a retried request is harmless; any other answer to a resolved
        item is a ResolveConflictError. Only the holder of a live lease may resolve an open item.
        ``tags`` None: the answer says nothing about tags (an empty list says "none of them")."""
        _name(reviewer, "reviewer")
        _name(category, "category")
        now = self._now()
        with self._write() as session, session.begin():
            answered_tags = None if tags is None else sorted({str(t) for t in tags})
            row = self._locked(session, item_id)
            if row.resolved_at is not None:
                if (row.resolved_by, row.resolved_category, row.resolved_priority, row.resolved_tags) == (
                    reviewer,
                    category,
                    priority,
                    answered_tags,
                ):
                    return to_item(row, now)
                raise ResolveConflictError(
                    item_id,
                    reviewer,
                    f"already resolved by {row.resolved_by!r} as category={row.resolved_category!r}, "
                    f"priority={row.resolved_priority!r}",
                )
            self._check_lease(row, reviewer, now)
            row.resolved_by = reviewer
            row.resolved_at = now
            row.resolved_category = category
            row.resolved_priority = priority
            row.resolved_tags = answered_tags
            row.note = note
            row.lease_expires_at = None
            session.add(
                ReviewEventRow(
                    item_id=row.id,
                    at=now,
                    actor=reviewer,
                    action="resolved",
                    detail={"category": category, "priority": priority, "tags": answered_tags},
                )
            )
            session.flush()
            return to_item(row, now)

    def release(self, item_id: int, reviewer: str) -> ReviewItem:
        """Hand a claimed item back to the queue before its lease runs out."""
        _name(reviewer, "reviewer")
        now = self._now()
        with self._write() as session, session.begin():
            row = self._locked(session, item_id)
            if row.resolved_at is not None:
                raise NotLeaseHolderError(item_id, reviewer, f"it is already resolved by {row.resolved_by!r}")
            self._check_lease(row, reviewer, now)
            row.claimed_by = None
            row.claimed_at = None
            row.lease_expires_at = None
            session.add(ReviewEventRow(item_id=row.id, at=now, actor=reviewer, action="released"))
            session.flush()
            return to_item(row, now)

    @staticmethod
    def _locked(session: Session, item_id: int) -> ReviewRow:
        row = session.get(ReviewRow, item_id, with_for_update=True)
        if row is None:
            raise ReviewNotFoundError(item_id)
        return row

    @staticmethod
    def _check_lease(row: ReviewRow, reviewer: str, now: datetime) -> None:
        if row.claimed_by is None or row.lease_expires_at is None:
            raise NotLeaseHolderError(row.id, reviewer, "it is not claimed")
        if row.claimed_by != reviewer:
            live = row.lease_expires_at > now
            holder = f"claimed by {row.claimed_by!r}" + ("" if live else " (lease expired)")
            raise NotLeaseHolderError(row.id, reviewer, f"it is {holder}")
        if row.lease_expires_at <= now:
            expired = row.lease_expires_at.isoformat()
            raise NotLeaseHolderError(row.id, reviewer, f"the lease expired at {expired}")

    # --- reads -------------------------------------------------------------------------------------

    def get(self, item_id: int) -> ReviewItem | None:
        now = self._now()
        with self._read() as session:
            row = session.get(ReviewRow, item_id)
            return None if row is None else to_item(row, now)

    def list(
        self,
        *,
        status: str | None = None,
        category: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ReviewItem]:
        """Newest first. ``category`` is the model's predicted category; ``since`` bounds the time the item
        was queued (inclusive)."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        if offset < 0:
            raise ValueError("offset must not be negative")
        now = self._now()
        query = select(ReviewRow)
        if status is not None:
            query = query.where(_status_is(status, now))
        if category is not None:
            query = query.where(ReviewRow.predicted_category == category)
        if since is not None:
            query = query.where(ReviewRow.enqueued_at >= as_utc(since))
        query = query.order_by(ReviewRow.enqueued_at.desc(), ReviewRow.id.desc()).limit(limit).offset(offset)
        with self._read() as session:
            return [to_item(row, now) for row in session.scalars(query)]

    def stats(self, now: datetime | None = None, reviewer: str | None = None) -> dict[str, Any]:
        """Queue figures at ``now``. Agreement is the share of resolved items whose reviewer kept the
        model's category, overall and per predicted category (None when nothing is resolved). With
        ``reviewer``, also how many items that reviewer resolved today and in all."""
        now = self._now() if now is None else as_utc(now)
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        resolved = ReviewRow.resolved_at.is_not(None)

        def count(condition: ColumnElement[bool]) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        agreed = ReviewRow.resolved_category == ReviewRow.predicted_category
        resolved_today = and_(resolved, ReviewRow.resolved_at >= day_start, ReviewRow.resolved_at <= now)
        by_them = ReviewRow.resolved_by == (reviewer or "")
        with self._read() as session:
            pending, claimed, today, total, mine_today, mine_total = session.execute(
                select(
                    count(_status_is(PENDING, now)),
                    count(_status_is(CLAIMED, now)),
                    count(resolved_today),
                    count(resolved),
                    count(and_(resolved_today, by_them)),
                    count(and_(resolved, by_them)),
                )
            ).one()
            per_category = session.execute(
                select(ReviewRow.predicted_category, func.count(), count(agreed))
                .where(resolved)
                .group_by(ReviewRow.predicted_category)
                .order_by(ReviewRow.predicted_category)
            ).all()
            durations = [
                (done - queued).total_seconds()
                for queued, done in session.execute(
                    select(ReviewRow.enqueued_at, ReviewRow.resolved_at).where(resolved)
                )
            ]
        by_category = {
            name: {"resolved": int(n), "agreed": int(k), "agreement": int(k) / int(n)}
            for name, n, k in per_category
        }
        agreed_total = sum(v["agreed"] for v in by_category.values())
        return {
            "pending": int(pending),
            "claimed": int(claimed),
            "resolved_today": int(today),
            "resolved_total": int(total),
            "median_seconds_to_resolve": statistics.median(durations) if durations else None,
            "agreement": agreed_total / int(total) if total else None,
            "agreement_by_category": by_category,
            "reviewer": reviewer,
            "resolved_by_reviewer_today": int(mine_today) if reviewer else None,
            "resolved_by_reviewer_total": int(mine_total) if reviewer else None,
        }

    def monitor_figures(self, recent: int) -> dict[str, Any]:
        """What the metrics poll reads: queue depth by status, and the model's agreement with reviewers
        over the ``recent`` latest resolutions (a rolling figure an alert can react to)."""
        now = self._now()
        latest = (
            select(ReviewRow.resolved_category, ReviewRow.predicted_category)
            .where(ReviewRow.resolved_at.is_not(None))
            .order_by(ReviewRow.resolved_at.desc(), ReviewRow.id.desc())
            .limit(recent)
            .subquery()
        )
        with self._read() as session:
            pending, claimed = session.execute(
                select(
                    func.count().filter(_status_is(PENDING, now)),
                    func.count().filter(_status_is(CLAIMED, now)),
                ).select_from(ReviewRow)
            ).one()
            window, agreed = session.execute(
                select(
                    func.count(),
                    func.coalesce(
                        func.sum(
                            case((latest.c.resolved_category == latest.c.predicted_category, 1), else_=0)
                        ),
                        0,
                    ),
                ).select_from(latest)
            ).one()
        return {
            "pending": int(pending),
            "claimed": int(claimed),
            "recent_resolved": int(window),
            "recent_agreement": int(agreed) / int(window) if window else None,
        }

    def corrections(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Resolved items as training rows (oldest resolution first): the reviewer's category, and the
        reviewer's priority or else the model's. Times are ISO 8601 strings, ready for CSV or JSON."""
        query = select(ReviewRow).where(ReviewRow.resolved_at.is_not(None))
        if since is not None:
            query = query.where(ReviewRow.resolved_at >= as_utc(since))
        query = query.order_by(ReviewRow.resolved_at, ReviewRow.id)
        with self._read() as session:
            rows = list(session.scalars(query))
        return [
            {
                "ticket_id": row.ticket_id,
                "subject": row.subject,
                "description": row.description,
                "created_at": None if row.ticket_created_at is None else row.ticket_created_at.isoformat(),
                "channel": row.channel,
                "customer_tier": row.customer_tier,
                "urgency": row.urgency,
                "category": row.resolved_category,
                "priority": row.resolved_priority
                if row.resolved_priority is not None
                else row.predicted_priority,
                # The reviewer's tags, or else the model's, joined like `triage predict` joins them.
                "tags": None if (tags := _final_tags(row)) is None else LIST_SEPARATOR.join(tags),
            }
            for row in rows
        ]


def _final_tags(row: ReviewRow) -> list[str] | None:
    return row.resolved_tags if row.resolved_tags is not None else row.predicted_tags


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Open and not under a live lease (never claimed, released, or expired)."""
    return and_(
        ReviewRow.resolved_at.is_(None),
        or_(
            ReviewRow.claimed_by.is_(None),
            ReviewRow.lease_expires_at.is_(None),
            ReviewRow.lease_expires_at <= now,
        ),
    )


def _status_is(status: str, now: datetime) -> ColumnElement[bool]:
    if status == RESOLVED:
        return ReviewRow.resolved_at.is_not(None)
    if status == PENDING:
        return _claimable(now)
    return and_(
        ReviewRow.resolved_at.is_(None),
        ReviewRow.claimed_by.is_not(None),
        ReviewRow.lease_expires_at > now,
    )
