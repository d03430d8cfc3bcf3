"""The ticket ledger and ticket-keyed review items on both real backends (SQLite file, PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.integration import test_review_store
from tests.integration.test_review_store import Backend

from ticket_triage.data.canonical import ticket_review_key
from ticket_triage.review import NewReviewItem, ReviewStore
from ticket_triage.review.models import ReviewEventRow, ReviewRow
from ticket_triage.serving.ticket_ledger import TicketLedger, TicketVersion

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
backend = test_review_store.backend  # the same two real backends


def _answer(prediction_id: str, category: str = "Billing") -> dict[str, object]:
    return {"prediction_id": prediction_id, "category": category, "route": "review", "review_id": None}


def test_the_first_answer_of_a_version_is_kept_and_found(backend: Backend) -> None:
    ledger = TicketLedger(backend.engine)
    v1 = TicketVersion("zendesk", "35436", "a" * 64)
    v2 = TicketVersion("zendesk", "35436", "b" * 64)
    other_source = TicketVersion("jira", "35436", "a" * 64)
    kept = ledger.claim([(v1, _answer("p1")), (other_source, _answer("p9"))], T0)
    assert kept[v1]["prediction_id"] == "p1" and kept[other_source]["prediction_id"] == "p9"
    again = ledger.claim([(v1, _answer("p2", "Returns")), (v2, _answer("p3"))], T0)
    assert again[v1]["prediction_id"] == "p1" and again[v1]["category"] == "Billing"
    assert again[v2]["prediction_id"] == "p3"
    ledger.set_review_ids([(v1, "p1", 41), (v2, "not-its-answer", 99)])
    found = ledger.find([v1, v2, TicketVersion("zendesk", "1", "a" * 64)])
    assert set(found) == {v1, v2}
    assert found[v1]["review_id"] == 41 and found[v2]["review_id"] is None
    assert ledger.count("zendesk") == 2 and ledger.count() == 3
    assert ledger.delete_older_than(T0 + timedelta(seconds=1)) == 3
    assert ledger.find([v1]) == {}


def test_racing_deliveries_of_one_version_end_with_one_answer(backend: Backend) -> None:
    ledger = TicketLedger(backend.engine)
    version = TicketVersion("api", "T-7", "c" * 64)
    seen: list[str] = []
    start = threading.Barrier(6)

    def deliver(n: int) -> None:
        start.wait()
        seen.append(str(ledger.claim([(version, _answer(f"race-{n}"))], T0)[version]["prediction_id"]))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(seen) == 6 and len(set(seen)) == 1, seen
    assert ledger.count("api") == 1


def _item(prediction_id: str, subject: str, category: str, *, when: datetime) -> NewReviewItem:
    return NewReviewItem(
        predicted_category=category,
        confidence=0.41,
        model_version="m1",
        top_labels=((category, 0.41), ("Other", 0.3)),
        ticket_id="35436",
        subject=subject,
        description="The card was charged twice.",
        prediction_id=prediction_id,
        enqueued_at=when,
        review_key=ticket_review_key("zendesk", "35436"),
        updates_open=True,
    )


def test_a_new_version_updates_the_open_item_and_keeps_its_claim(backend: Backend) -> None:
    store = ReviewStore(backend.engine, lease_seconds=600, clock=lambda: T0)
    [first] = store.add_items([_item("p1", "Charged twice", "Billing", when=T0)])
    claimed = store.claim("alice")
    assert claimed is not None and claimed.id == first
    [again] = store.add_items(
        [_item("p2", "Charged twice (edited)", "Refunds", when=T0 + timedelta(minutes=5))]
    )
    assert again == first
    item = store.get(first)
    assert item is not None
    assert (item.subject, item.predicted_category) == ("Charged twice (edited)", "Refunds")
    with Session(backend.engine) as session:
        assert session.scalar(select(ReviewRow.prediction_id).where(ReviewRow.id == first)) == "p2"
    assert item.claimed_by == "alice" and item.enqueued_at == T0
    # The same version replayed from the spool changes nothing and adds no event.
    assert store.add_items(
        [_item("p2", "Charged twice (edited)", "Refunds", when=T0)], skip_existing=True
    ) == [first]
    with Session(backend.engine) as session:
        actions = session.scalars(
            select(ReviewEventRow.action).where(ReviewEventRow.item_id == first).order_by(ReviewEventRow.id)
        ).all()
    assert actions == ["added", "claimed", "updated"]
    assert len(store.list()) == 1
    # Once resolved, the ticket's next version is a new item.
    store.resolve(first, "alice", "Refunds")
    [third] = store.add_items([_item("p3", "Charged twice, again", "Billing", when=T0)])
    assert third != first and len(store.list()) == 2
