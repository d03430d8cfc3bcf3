"""The spool and the durable writer against real databases: order, exactly-once replay, orphans, retention."""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from tests.integration.conftest import make_writer

from ticket_triage.audit import AuditRecord, AuditRow, DurableWriter, Spool, count_audit, insert_audit
from ticket_triage.audit.writer import decode_review, encode_review
from ticket_triage.review import NewReviewItem, make_engine, migrate
from ticket_triage.review.models import ReviewRow


def _record(n: int, when: datetime | None = None) -> AuditRecord:
    return AuditRecord(
        prediction_id=uuid.uuid4().hex,
        predicted_at=when or datetime.now(UTC),
        model_version="v1",
        category="billing" if n % 2 else "technical",
        confidence=0.5 + (n % 50) / 100,
        route="review" if n % 3 == 0 else "auto",
        cached=n % 5 == 0,
        latency_ms=float(n),
        endpoint="predict",
        ticket_id=f"T-{n}",
        priority="high",
    )


def _item(n: int) -> NewReviewItem:
    return NewReviewItem(
        predicted_category="billing",
        confidence=0.41,
        model_version="v1",
        top_labels=(("billing", 0.41), ("technical", 0.33)),
        predicted_priority="high",
        ticket_id=f"T-{n}",
        subject=f"subject {n}",
        description="text",
        created_at=datetime(2026, 3, 3, 9, 15, tzinfo=UTC),
        metadata={"n": n},
        prediction_id=uuid.uuid4().hex,
        enqueued_at=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=n),
    )


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite+pysqlite:///{tmp_path / 'audit.sqlite3'}")
    migrate(engine)
    return engine


def _writer(engine: Engine, spool_dir: Path, prepare: Callable[[], None] | None = None) -> DurableWriter:
    return make_writer(engine, spool_dir, prepare=prepare)


def test_spool_keeps_order_and_the_unreplayed_tail(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([{"n": 1}, {"n": 2}])
    first = spool.read()
    spool.append([{"n": 3}])  # arrives while the first two are being replayed
    spool.consumed(first.upto)
    assert [r["n"] for r in first.records] == [1, 2]
    assert spool.pending
    assert [r["n"] for r in spool.read().records] == [3]
    spool.consumed(spool.read().upto)
    assert not spool.pending and not spool.path.exists()
    spool.close()
    assert list(tmp_path.iterdir()) == []


def test_review_items_survive_the_spool_encoding() -> None:
    item = _item(7)
    assert decode_review(json.loads(json.dumps(encode_review(item)))) == item


def _die_with_records(directory: str) -> None:
    spool = Spool(Path(directory))
    spool.append([{"kind": "audit", "data": _record(1).to_json()}])
    with open(spool.path, "ab") as handle:
        handle.write(b'{"kind": "audit", "da')  # a crash in the middle of an append
    # exits without close(): the lock dies with the process, the file stays


def test_a_dead_process_spool_is_adopted_once_and_its_torn_line_skipped(
    tmp_path: Path, engine: Engine
) -> None:
    spool_dir = tmp_path / "spool"
    process = multiprocessing.get_context("spawn").Process(target=_die_with_records, args=(str(spool_dir),))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert len(list(spool_dir.glob("*.jsonl"))) == 1

    writer = _writer(engine, spool_dir)
    writer.start()
    assert writer.flush(10)
    writer.close()
    assert count_audit(engine) == 1
    assert writer.counts.replayed == 1
    assert list(spool_dir.iterdir()) == []


def test_writer_batches_audit_records_and_queues_review_items(tmp_path: Path, engine: Engine) -> None:
    writer = _writer(engine, tmp_path / "spool")
    writer.start()
    records = [_record(n) for n in range(437)]
    for start in range(0, len(records), 7):
        writer.record(records[start : start + 7])
    ids = writer.add_review_items([_item(1), _item(2)])
    assert writer.flush(10)
    writer.close()
    assert all(isinstance(i, int) for i in ids)
    assert count_audit(engine) == 437
    assert writer.counts.written == 437 + 2 and writer.counts.spooled == 0
    with Session(engine) as session:
        stored = session.scalars(select(AuditRow).order_by(AuditRow.id)).all()
        assert [r.prediction_id for r in stored] == [r.prediction_id for r in records]  # in order
        assert stored[3].latency_ms == 3.0 and stored[3].cached is False and stored[5].cached is True


def test_unreachable_database_spools_then_replays_exactly_once(tmp_path: Path) -> None:
    """A database file in a folder that does not exist yet is a real, reproducible write failure."""
    missing = tmp_path / "not-yet"
    engine = make_engine(f"sqlite+pysqlite:///{missing / 'db.sqlite3'}")
    missing.rmdir()  # make_engine created the folder; without it SQLite cannot open the file
    # As the app does when its start-up migration failed: migrate before the first write.
    writer = _writer(engine, tmp_path / "spool", prepare=lambda: migrate(engine))
    writer.start()

    records = [_record(n) for n in range(120)]
    writer.record(records[:60])
    items = [_item(n) for n in range(10)]
    ids = writer.add_review_items(items)
    assert ids == [None] * 10  # spooled, not queued
    writer.record(records[60:])
    # Everything is in the spool, durable, while the database cannot be reached.
    deadline = time.monotonic() + 10
    while writer.counts.spooled < 130 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.counts.spooled == 130, writer.counts
    assert writer.counts.written == 0

    missing.mkdir()  # the database comes back
    assert writer.flush(20)
    # A record already stored (a commit whose outcome was in doubt) replayed again is not stored twice.
    writer._spool.append([{"kind": "audit", "data": records[0].to_json()}])
    writer._spool.append([{"kind": "review", "data": encode_review(items[0])}])
    assert writer.flush(20)
    writer.close()

    assert count_audit(engine) == 120
    with Session(engine) as session:
        rows = session.scalars(select(ReviewRow).order_by(ReviewRow.id)).all()
        assert [r.prediction_id for r in rows] == [i.prediction_id for i in items]
        assert rows[0].enqueued_at == items[0].enqueued_at  # a replayed item keeps its place in the queue
    assert writer.counts.replayed == 132
    assert not list((tmp_path / "spool").glob("*.jsonl"))


def test_a_ticket_repeated_during_an_outage_is_one_item_after_the_replay(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    engine = make_engine(f"sqlite+pysqlite:///{missing / 'db.sqlite3'}")
    missing.rmdir()
    writer = _writer(engine, tmp_path / "spool", prepare=lambda: migrate(engine))
    writer.start()
    key = "a" * 64
    first, repeat = replace(_item(1), review_key=key), replace(_item(2), review_key=key)
    assert writer.add_review_items([first]) == [None]
    assert writer.add_review_items([repeat, replace(_item(3), review_key="b" * 64)]) == [None, None]

    missing.mkdir()
    assert writer.flush(20)
    with Session(engine) as session:
        rows = session.scalars(select(ReviewRow).order_by(ReviewRow.id)).all()
    assert [r.review_key for r in rows] == [key, "b" * 64]  # the repeat was merged in the replay
    assert rows[0].prediction_id == first.prediction_id
    # Once the store answers again, the repeat of an open item gets that item's id on the request path.
    assert writer.add_review_items([replace(_item(4), review_key=key)]) == [rows[0].id]
    writer.close()


def test_retention_deletes_only_old_records(tmp_path: Path, engine: Engine) -> None:
    now = datetime.now(UTC)
    insert_audit(engine, [_record(1, now - timedelta(days=40)), _record(2, now - timedelta(days=2))])
    writer = _writer(engine, tmp_path / "spool")
    writer.start()
    assert writer.flush(10)
    writer.close()
    with Session(engine) as session:
        assert [r.ticket_id for r in session.scalars(select(AuditRow))] == ["T-2"]
