"""The review queue store on both real backends: an SQLite file and a throwaway PostgreSQL database."""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.orm import Session

from ticket_triage.config import Settings
from ticket_triage.review import (
    CLAIMED,
    PENDING,
    RESOLVED,
    NewReviewItem,
    NotLeaseHolderError,
    ResolveConflictError,
    ReviewError,
    ReviewNotFoundError,
    ReviewStore,
    make_engine,
    migrate,
)
from ticket_triage.review.db import SQLITE_IMMEDIATE
from ticket_triage.review.models import ReviewEventRow, ReviewRow

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
T0 = datetime(2026, 3, 9, 23, 50, tzinfo=UTC)


@dataclass
class Backend:
    name: str
    engine: Engine


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path) -> Iterator[Backend]:
    if request.param == "sqlite":
        engine = make_engine(Settings(database_url=None, database_file=tmp_path / "var" / "review.sqlite3"))
        try:
            migrate(engine)
            yield Backend("sqlite", engine)
        finally:
            engine.dispose()
        return
    name = f"triage_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(Settings(database_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"))
    try:
        migrate(engine)
        yield Backend("postgresql", engine)
    finally:
        engine.dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def new(category: str = "billing", priority: str | None = "medium", **extra) -> NewReviewItem:
    fields = {
        "predicted_category": category,
        "confidence": 0.41,
        "model_version": "m-2026-03-01",
        "top_labels": ((category, 0.41), ("other", 0.33)),
        "predicted_priority": priority,
        "subject": f"{category} question",
        "description": "Please help with my account.",
        **extra,
    }
    return NewReviewItem(**fields)


# --- concurrency ----------------------------------------------------------------------------------------


def test_concurrent_reviewers_claim_and_resolve_every_item_exactly_once(backend: Backend) -> None:
    store = ReviewStore(backend.engine, lease_seconds=600)
    priorities = ("low", "medium", "high", "critical", None)
    ids = store.add_items(
        [new(f"cat{i % 7}", priorities[i % len(priorities)], ticket_id=f"T{i}") for i in range(500)]
    )
    assert len(set(ids)) == 500

    claims: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def reviewer(name: str) -> None:
        mine: list[int] = []
        claims[name] = mine
        try:
            start.wait(timeout=30)
            while (item := store.claim(name)) is not None:
                assert item.claimed_by == name and item.status == CLAIMED
                mine.append(item.id)
                done = store.resolve(item.id, name, category=item.predicted_category)
                assert done.status == RESOLVED and done.resolved_by == name
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reviewer, args=(f"reviewer-{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a reviewer thread hung"
    assert errors == []

    claimed = Counter(item_id for mine in claims.values() for item_id in mine)
    duplicates = sum(n - 1 for n in claimed.values() if n > 1)
    lost = set(ids) - set(claimed)
    resolved = store.list(status=RESOLVED, limit=1000)
    claimant = {item_id: name for name, mine in claims.items() for item_id in mine}
    print(
        f"\n{backend.name}: {len(ids)} items, {len(resolved)} resolved, {duplicates} duplicate claims, "
        f"{len(lost)} lost; per reviewer {sorted(len(m) for m in claims.values())}"
    )
    assert duplicates == 0
    assert lost == set()
    assert sum(claimed.values()) == 500
    assert len(resolved) == 500
    assert all(item.resolved_by == claimant[item.id] for item in resolved)
    assert sum(1 for mine in claims.values() if mine) >= 2, "only one thread did any work"
    stats = store.stats()
    assert (stats["pending"], stats["claimed"], stats["resolved_total"]) == (0, 0, 500)
    with backend.engine.connect() as conn:
        events = dict(
            conn.execute(select(ReviewEventRow.action, func.count()).group_by(ReviewEventRow.action)).all()
        )
    assert events == {"added": 500, "claimed": 500, "resolved": 500}


# --- ordering -------------------------------------------------------------------------------------------


def test_claim_order_is_priority_rank_then_age(backend: Backend) -> None:
    clock = Clock()
    store = ReviewStore(backend.engine, lease_seconds=600, clock=clock)
    order_added = ["low", None, "high", "urgent", "weird", "Critical", "medium", "high", "normal"]
    ids: dict[int, str | None] = {}
    for priority in order_added:
        (item_id,) = store.add_items([new(priority=priority)])
        ids[item_id] = priority
        clock.advance(1)
    by_priority = {p: [i for i, q in ids.items() if q == p] for p in set(order_added)}

    got = []
    while (item := store.claim("alice")) is not None:
        got.append(item.id)
    expected = [
        *by_priority["urgent"],  # rank 0, older
        *by_priority["Critical"],  # rank 0, newer (case does not matter)
        *by_priority["high"],  # rank 1, both, oldest first
        *by_priority["medium"],  # rank 2, older
        *by_priority["normal"],  # rank 2, newer
        *by_priority["low"],  # rank 3
        *by_priority[None],  # unknown: last, by age
        *by_priority["weird"],
    ]
    assert got == expected
    assert len(by_priority["high"]) == 2 and by_priority["high"][0] < by_priority["high"][1]


# --- leases ---------------------------------------------------------------------------------------------


def test_expired_lease_returns_item_and_old_holder_loses_it(backend: Backend) -> None:
    clock = Clock()
    store = ReviewStore(backend.engine, lease_seconds=60, clock=clock)
    (item_id,) = store.add_items([new()])

    first = store.claim("alice")
    assert first is not None and first.id == item_id
    assert first.lease_expires_at == T0 + timedelta(seconds=60)
    assert first.lease_expires_at.tzinfo is not None and first.lease_expires_at.utcoffset() == timedelta(0)
    assert store.claim("bob") is None

    clock.advance(59)
    assert store.get(item_id).status == CLAIMED
    assert store.claim("bob") is None

    clock.advance(1)  # exactly at expiry: the lease is over
    expired = store.get(item_id)
    assert (expired.status, expired.claimed_by) == (PENDING, None)
    assert [i.id for i in store.list(status=PENDING)] == [item_id]
    with pytest.raises(NotLeaseHolderError, match="lease expired") as exc:
        store.resolve(item_id, "alice", category="billing")
    assert f"item {item_id}" in str(exc.value) and "'alice'" in str(exc.value)

    second = store.claim("bob")
    assert second is not None and second.id == item_id and second.claimed_by == "bob"
    assert second.lease_expires_at == T0 + timedelta(seconds=120)
    with pytest.raises(NotLeaseHolderError, match="claimed by 'bob'"):
        store.resolve(item_id, "alice", category="billing")
    with pytest.raises(NotLeaseHolderError):
        store.release(item_id, "alice")

    done = store.resolve(item_id, "bob", category="tech", priority="high", note="misrouted")
    assert (done.status, done.resolved_by, done.resolved_category, done.resolved_priority, done.note) == (
        RESOLVED,
        "bob",
        "tech",
        "high",
        "misrouted",
    )
    assert done.resolved_at == T0 + timedelta(seconds=60)
    clock.advance(3600)  # a resolved item never returns to the queue
    assert store.claim("carol") is None
    assert store.get(item_id).status == RESOLVED


def test_resolve_is_idempotent_for_the_same_answer_and_conflicts_otherwise(backend: Backend) -> None:
    clock = Clock()
    store = ReviewStore(backend.engine, lease_seconds=60, clock=clock)
    item_id, other_id = store.add_items([new(priority="high"), new(priority="low")])

    with pytest.raises(NotLeaseHolderError, match="not claimed"):
        store.resolve(item_id, "alice", category="tech")
    with pytest.raises(ReviewNotFoundError, match=r"review item 999999 does not exist"):
        store.resolve(999_999, "alice", category="tech")
    assert store.get(999_999) is None

    assert store.claim("alice").id == item_id
    first = store.resolve(item_id, "alice", category="tech", priority="high")
    clock.advance(30)
    again = store.resolve(item_id, "alice", category="tech", priority="high")
    assert again == first
    assert again.resolved_at == T0

    for reviewer, category, priority in [
        ("alice", "billing", "high"),
        ("alice", "tech", "low"),
        ("alice", "tech", None),
        ("bob", "tech", "high"),
    ]:
        with pytest.raises(ResolveConflictError) as exc:
            store.resolve(item_id, reviewer, category=category, priority=priority)
        message = str(exc.value)
        assert f"review item {item_id}" in message and repr(reviewer) in message
        assert "already resolved by 'alice' as category='tech'" in message
        assert isinstance(exc.value, ReviewError)
    after = store.get(item_id)
    assert (after.resolved_category, after.resolved_priority, after.resolved_at) == ("tech", "high", T0)
    assert store.get(other_id).status == PENDING


def test_release_returns_the_item_to_the_queue(backend: Backend) -> None:
    clock = Clock()
    store = ReviewStore(backend.engine, lease_seconds=60, clock=clock)
    (item_id,) = store.add_items([new()])

    assert store.claim("alice").id == item_id
    with pytest.raises(NotLeaseHolderError, match="claimed by 'alice'"):
        store.release(item_id, "bob")
    released = store.release(item_id, "alice")
    assert (released.status, released.claimed_by, released.lease_expires_at) == (PENDING, None, None)
    with pytest.raises(NotLeaseHolderError, match="not claimed"):
        store.release(item_id, "alice")

    clock.advance(5)
    again = store.claim("bob")
    assert again.id == item_id and again.lease_expires_at == T0 + timedelta(seconds=65)
    with pytest.raises(NotLeaseHolderError):
        store.resolve(item_id, "alice", category="billing")
    store.resolve(item_id, "bob", category="billing")
    with pytest.raises(NotLeaseHolderError, match="already resolved by 'bob'"):
        store.release(item_id, "bob")
    with pytest.raises(ReviewNotFoundError):
        store.release(424_242, "bob")


# --- a repeated ticket ------------------------------------------------------------------------------


def test_a_ticket_repeated_while_its_item_is_open_reuses_the_item(backend: Backend) -> None:
    clock = Clock()
    store = ReviewStore(backend.engine, lease_seconds=60, clock=clock)
    first, again, other, unkeyed, unkeyed_too = store.add_items(
        [
            new(review_key="k" * 64, ticket_id="T-1"),
            new(review_key="k" * 64, ticket_id="T-2"),  # the same ticket twice in one call
            new(review_key="o" * 64),
            new(),
            new(),  # no key: never merged
        ]
    )
    assert first == again and len({first, other, unkeyed, unkeyed_too}) == 4
    assert store.add_items([new(review_key="k" * 64)]) == [first]  # pending: reused
    clock.advance(10)
    assert store.claim("alice").id == first
    assert store.add_items([new(review_key="k" * 64)]) == [first]  # claimed: still reused
    assert store.get(first).ticket_id == "T-1"  # the item is the first ticket's
    store.resolve(first, "alice", category="billing")
    (after,) = store.add_items([new(review_key="k" * 64)])  # answered: the ticket may be queued again
    assert after not in {first, other, unkeyed, unkeyed_too}
    assert store.add_items([new(review_key="k" * 64)]) == [after]
    with Session(backend.engine) as session:
        added = session.scalar(select(func.count()).where(ReviewEventRow.action == "added"))
    assert added == 5  # one "added" event per item, none for the reuses
    assert store.stats()["pending"] == 4


def test_two_writers_adding_one_ticket_at_once_add_one_item(backend: Backend) -> None:
    """The first writer's transaction is held open with the item inserted; the second must wait for it
    and then answer with that item, on PostgreSQL (the unique index of open keys: ``ON CONFLICT`` waits
    for the other transaction) as on SQLite (the write lock)."""
    store = ReviewStore(backend.engine, lease_seconds=60)
    key = "r" * 64
    session = Session(backend.engine.execution_options(**{SQLITE_IMMEDIATE: True}))
    session.begin()
    row = ReviewStore._new_row(new(review_key=key), T0)
    session.add(row)
    session.flush()
    answered: list[int] = []
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            answered.extend(store.add_items([new(review_key=key)]))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=second_writer)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive(), "the second writer did not wait for the first one's transaction"
    first_id = row.id
    session.commit()
    session.close()
    thread.join(30)
    assert errors == [] and answered == [first_id]
    with Session(backend.engine) as check:
        assert check.scalar(select(func.count()).select_from(ReviewRow)) == 1


def test_many_writers_racing_with_one_ticket_add_one_item(backend: Backend) -> None:
    store = ReviewStore(backend.engine, lease_seconds=60)
    start = threading.Barrier(8)
    ids: list[int] = []
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait(timeout=30)
            ids.extend(store.add_items([new(review_key="x" * 64, ticket_id=f"T-{n}")]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(ids) == 8 and len(set(ids)) == 1
    assert store.stats()["pending"] == 1


# --- reads ----------------------------------------------------------------------------------------------


def test_list_filters_and_pages(backend: Backend) -> None:
    clock = Clock()
    store = ReviewStore(backend.engine, lease_seconds=60, clock=clock)
    ids = []
    for category, priority in [
        ("billing", "critical"),  # 0 -> resolved
        ("tech", "high"),  # 1 -> claimed, live
        ("billing", "medium"),  # 2 -> claimed, then the lease expires
        ("tech", "low"),  # 3 pending
        ("billing", None),  # 4 pending
    ]:
        ids += store.add_items([new(category, priority)])
        clock.advance(60)
    # added at T0, +60, +120, +180, +240; now T0+300
    assert store.claim("alice").id == ids[0]
    store.resolve(ids[0], "alice", category="billing")
    assert store.claim("bob").id == ids[1]
    clock.advance(-30)  # bob's and carol's leases differ in age: carol's lease ends first
    assert store.claim("carol").id == ids[2]
    clock.advance(30)
    assert store.claim("dave").id == ids[3]  # expires at T0+360
    clock.set(T0 + timedelta(seconds=335))  # carol's lease (T0+330) is over; bob's (T0+360) not

    newest_first = list(reversed(ids))
    assert [i.id for i in store.list()] == newest_first
    assert [i.id for i in store.list(status=RESOLVED)] == [ids[0]]
    assert [i.id for i in store.list(status=CLAIMED)] == [ids[3], ids[1]]
    assert [i.id for i in store.list(status=PENDING)] == [ids[4], ids[2]]
    assert [i.id for i in store.list(category="billing")] == [ids[4], ids[2], ids[0]]
    assert [i.id for i in store.list(category="billing", status=PENDING)] == [ids[4], ids[2]]
    assert [i.id for i in store.list(since=T0 + timedelta(seconds=120))] == [ids[4], ids[3], ids[2]]
    assert [i.id for i in store.list(since=T0 + timedelta(seconds=121))] == [ids[4], ids[3]]
    assert [i.id for i in store.list(limit=2)] == newest_first[:2]
    assert [i.id for i in store.list(limit=2, offset=2)] == newest_first[2:4]
    assert [i.id for i in store.list(limit=2, offset=4)] == newest_first[4:]
    assert store.list(limit=2, offset=5) == []
    assert store.list(category="nope") == []

    item = store.get(ids[1])
    assert item.top_labels == (("tech", 0.41), ("other", 0.33))
    assert item.enqueued_at == T0 + timedelta(seconds=60) and item.enqueued_at.tzinfo is not None
    with pytest.raises(ValueError, match="status must be one of"):
        store.list(status="open")
    with pytest.raises(ValueError, match="limit"):
        store.list(limit=0)


def _stats_fixture(store: ReviewStore, clock: Clock) -> list[int]:
    """i1..i5 with hand-picked times (the store's lease is 900 s); see test_stats for the figures."""
    clock.set(T0)  # 2026-03-09 23:50
    i1, i2 = store.add_items(
        [
            new(
                "billing",
                "critical",
                ticket_id=101,
                created_at=datetime(2026, 3, 9, 20, 0),  # naive: read as UTC
                channel="email",
                customer_tier="premium",
                urgency="high",
                language="en",
                metadata={"crm": {"account": 7}},
            ),
            new("billing", "high", ticket_id="T-102"),
        ]
    )
    clock.set(datetime(2026, 3, 9, 23, 55, tzinfo=UTC))
    assert store.claim("alice").id == i1
    clock.set(datetime(2026, 3, 9, 23, 58, 20, tzinfo=UTC))
    store.resolve(i1, "alice", category="billing")  # agrees; 500 s; yesterday
    clock.set(datetime(2026, 3, 10, 0, 10, tzinfo=UTC))
    (i3,) = store.add_items([new("tech", "medium", ticket_id="T-103")])
    clock.set(datetime(2026, 3, 10, 0, 20, tzinfo=UTC))
    i4, i5 = store.add_items([new("tech", "low"), new("account", None)])
    clock.set(datetime(2026, 3, 10, 1, 0, tzinfo=UTC))
    assert store.claim("bob").id == i2
    clock.set(datetime(2026, 3, 10, 1, 10, tzinfo=UTC))
    store.resolve(i2, "bob", category="tech", priority="low", note="not billing")  # disagrees; 4800 s
    assert store.claim("carol").id == i3
    clock.set(datetime(2026, 3, 10, 1, 20, tzinfo=UTC))
    store.resolve(i3, "carol", category="tech")  # agrees; 4200 s
    assert store.claim("dave").id == i4  # lease (900 s) until 01:35
    return [i1, i2, i3, i4, i5]


def test_stats_match_hand_computed_figures(backend: Backend) -> None:
    clock = Clock()
    store = ReviewStore(backend.engine, lease_seconds=900, clock=clock)
    assert store.stats() == {
        "pending": 0,
        "claimed": 0,
        "resolved_today": 0,
        "resolved_total": 0,
        "median_seconds_to_resolve": None,
        "agreement": None,
        "agreement_by_category": {},
        "reviewer": None,
        "resolved_by_reviewer_today": None,
        "resolved_by_reviewer_total": None,
    }
    _stats_fixture(store, clock)

    stats = store.stats(now=datetime(2026, 3, 10, 1, 25, tzinfo=UTC))
    assert stats == {
        "pending": 1,  # i5
        "claimed": 1,  # i4
        "resolved_today": 2,  # i2, i3 (i1 was resolved on the 9th)
        "resolved_total": 3,
        "median_seconds_to_resolve": 4200.0,  # median of 500, 4800, 4200
        "agreement": pytest.approx(2 / 3),
        "agreement_by_category": {
            "billing": {"resolved": 2, "agreed": 1, "agreement": 0.5},
            "tech": {"resolved": 1, "agreed": 1, "agreement": 1.0},
        },
        "reviewer": None,
        "resolved_by_reviewer_today": None,
        "resolved_by_reviewer_total": None,
    }
    alice = store.stats(now=datetime(2026, 3, 10, 1, 25, tzinfo=UTC), reviewer="alice")
    assert (alice["reviewer"], alice["resolved_by_reviewer_today"], alice["resolved_by_reviewer_total"]) == (
        "alice",
        0,  # her one answer (i1) was yesterday
        1,
    )
    bob = store.stats(now=datetime(2026, 3, 10, 1, 25, tzinfo=UTC), reviewer="bob")
    assert (bob["resolved_by_reviewer_today"], bob["resolved_by_reviewer_total"]) == (1, 1)
    later = store.stats(now=datetime(2026, 3, 10, 1, 35, tzinfo=UTC))  # dave's lease ran out
    assert (later["pending"], later["claimed"]) == (2, 0)
    yesterday = store.stats(now=datetime(2026, 3, 9, 23, 59, tzinfo=UTC))
    assert yesterday["resolved_today"] == 1
    clock.set(datetime(2026, 3, 10, 1, 21, tzinfo=UTC))
    assert store.stats()["claimed"] == 1  # default now is the store's clock


def test_corrections_are_training_rows(backend: Backend) -> None:
    clock = Clock()
    store = ReviewStore(backend.engine, lease_seconds=900, clock=clock)
    _stats_fixture(store, clock)

    rows = store.corrections()
    assert rows == [
        {
            "ticket_id": "101",
            "subject": "billing question",
            "description": "Please help with my account.",
            "created_at": "2026-03-09T20:00:00+00:00",
            "channel": "email",
            "customer_tier": "premium",
            "urgency": "high",
            "category": "billing",
            "priority": "critical",  # the reviewer gave none: the model's
            "tags": None,  # a model without tags, and no tag answer
        },
        {
            "ticket_id": "T-102",
            "subject": "billing question",
            "description": "Please help with my account.",
            "created_at": None,
            "channel": None,
            "customer_tier": None,
            "urgency": None,
            "category": "tech",  # the reviewer's, not the model's "billing"
            "priority": "low",  # the reviewer's, not the model's "high"
            "tags": None,
        },
        {
            "ticket_id": "T-103",
            "subject": "tech question",
            "description": "Please help with my account.",
            "created_at": None,
            "channel": None,
            "customer_tier": None,
            "urgency": None,
            "category": "tech",
            "priority": "medium",
            "tags": None,
        },
    ]
    since = store.corrections(since=datetime(2026, 3, 10, 1, 10, tzinfo=UTC))
    assert [r["ticket_id"] for r in since] == ["T-102", "T-103"]
    assert store.corrections(since=datetime(2026, 3, 10, 1, 21, tzinfo=UTC)) == []
    item = store.get(store.list(status=RESOLVED, limit=10)[-1].id)
    assert item.metadata == {"crm": {"account": 7}} and item.language == "en"


# --- schema ---------------------------------------------------------------------------------------------


def test_migrate_twice_is_a_no_op(backend: Backend) -> None:
    store = ReviewStore(backend.engine, lease_seconds=60)
    ids = store.add_items([new(), new("tech")])
    tables_before = set(inspect(backend.engine).get_table_names())

    migrate(backend.engine)
    migrate(backend.engine)

    with backend.engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        if backend.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    assert versions == ["0007_notifications"]
    assert set(inspect(backend.engine).get_table_names()) == tables_before
    assert tables_before == {
        "alembic_version",
        "review_items",
        "review_events",
        "prediction_audit",
        "dead_letters",
        "ticket_answers",
        "notifications",
    }
    assert [i.id for i in store.list()] == list(reversed(ids))
