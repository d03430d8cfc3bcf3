"""A record no database will take is that record's problem: the durable writer isolates it, dead-letters it
with the reason, and writes every other record exactly once (direct writes, the live spool, and a spool left
from before a restart), on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from tests.integration.conftest import make_writer

from ticket_triage.audit import AuditRecord, DeadLetterStore, DurableWriter, Spool, insert_audit
from ticket_triage.audit.dead_letter import FILE_NAME, DeadLetterRow
from ticket_triage.audit.isolate import isolate
from ticket_triage.audit.writer import encode_review
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.review import NewReviewItem, make_engine, migrate

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
GOOD = 200

#: Each poison kind, and the backends that refuse it with the reason they give. NaN and the 5,000-digit
#: integer are refused everywhere (JSON columns are strict; JSON cannot write such an integer); SQLite
#: stores NUL and 300 characters in a String(200) column, so there those records are good ones.
POISON: dict[str, dict[str, str]] = {
    "lone_surrogate": {"sqlite": "UnicodeEncodeError", "postgresql": "UnicodeEncodeError"},
    "nul": {"postgresql": "cannot contain NUL"},
    "nan": {"sqlite": "not JSON compliant", "postgresql": "not JSON compliant"},
    "digits_300": {"postgresql": "StringDataRightTruncation"},
    "huge_int": {"sqlite": "Exceeds the limit", "postgresql": "Exceeds the limit"},
}


@dataclass
class Backend:
    name: str
    url: str
    create: Callable[[], None]  # makes the database reachable (it is not until called)

    def engine(self) -> Engine:
        engine = make_engine(self.url)
        if self.name == "sqlite":
            Path(str(engine.url.database)).parent.rmdir()  # make_engine made the folder: not yet
        return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """An empty database that does not exist yet: a real outage until ``create`` is called."""
    if request.param == "sqlite":
        folder = tmp_path / "db"
        yield Backend("sqlite", f"sqlite+pysqlite:///{folder / 'review.sqlite3'}", folder.mkdir)
        return
    name = f"triage_poison_{secrets.token_hex(6)}"

    def create() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')

    yield Backend("postgresql", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", create)
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _audit(n: int, **changes: Any) -> AuditRecord:
    values: dict[str, Any] = {
        "prediction_id": uuid.uuid4().hex,
        "predicted_at": datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=n),
        "model_version": "v1",
        "category": "billing",
        "confidence": 0.5 + (n % 40) / 100,
        "route": "auto",
        "cached": False,
        "latency_ms": float(n),
        "endpoint": "predict",
        "ticket_id": f"T-{n}",
        "priority": "high",
        "signals": {"text_length": float(n)},
    }
    return AuditRecord(**{**values, **changes})


def _item(n: int, **changes: Any) -> NewReviewItem:
    values: dict[str, Any] = {
        "predicted_category": "billing",
        "confidence": 0.41,
        "model_version": "v1",
        "top_labels": (("billing", 0.41), ("technical", 0.33)),
        "predicted_priority": "high",
        "ticket_id": f"T-{n}",
        "subject": f"subject {n}",
        "description": "my invoice is wrong",
        "metadata": {"n": n},
        "prediction_id": uuid.uuid4().hex,
        "enqueued_at": datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=n),
    }
    return NewReviewItem(**{**values, **changes})


def _poisoned_audit(kind: str, n: int) -> AuditRecord:
    changes = {
        "lone_surrogate": {"ticket_id": "\ud800"},
        "nul": {"ticket_id": "T-\x00"},
        "nan": {"signals": {"text_length": float("nan")}},
        "digits_300": {"ticket_id": "9" * 300},
        "huge_int": {"signals": {"text_length": 10**5000}},
    }[kind]
    return _audit(n, **changes)


def _poisoned_item(kind: str, n: int) -> NewReviewItem:
    changes = {
        "lone_surrogate": {"ticket_id": "\ud800"},
        "nul": {"description": "my invoice\x00 is wrong"},
        "nan": {"metadata": {"score": float("nan")}},
        "digits_300": {"ticket_id": "9" * 300},
        "huge_int": {"metadata": {"n": 10**5000}},
    }[kind]
    return _item(n, **changes)


@dataclass
class Traffic:
    """Good records with one poison record of each kind spread among them, in the order sent."""

    audit: list[AuditRecord]
    items: list[NewReviewItem]
    poison: dict[str, str]  # prediction_id -> poison kind

    @classmethod
    def make(cls, start: int = 0) -> Traffic:
        audit = [_audit(start + n) for n in range(GOOD)]
        items = [_item(start + n) for n in range(GOOD)]
        poison: dict[str, str] = {}
        for slot, kind in enumerate(POISON):
            where = 17 + slot * 37  # spread over the run, inside different batches
            bad_audit = _poisoned_audit(kind, start + 1000 + slot)
            bad_item = _poisoned_item(kind, start + 1000 + slot)
            audit.insert(where, bad_audit)
            items.insert(where, bad_item)
            poison[bad_audit.prediction_id] = kind
            poison[bad_item.prediction_id] = kind
        return cls(audit, items, poison)

    def without(self, kind: str) -> Traffic:
        gone = {pid for pid, k in self.poison.items() if k == kind}
        return Traffic(
            [r for r in self.audit if r.prediction_id not in gone],
            [i for i in self.items if i.prediction_id not in gone],
            {pid: k for pid, k in self.poison.items() if pid not in gone},
        )

    def refused_on(self, backend: str) -> set[str]:
        return {pid for pid, kind in self.poison.items() if backend in POISON[kind]}


def _writer(
    engine: Engine, spool_dir: Path, metrics: ServiceMetrics, prepare: Callable[[], None] | None = None
) -> DurableWriter:
    return make_writer(engine, spool_dir, metrics=metrics, prepare=prepare, retention_days=0)


def _stored(engine: Engine) -> tuple[list[str], list[str], list[DeadLetterRow]]:
    with Session(engine) as session:
        audit = list(session.scalars(text("SELECT prediction_id FROM prediction_audit")))
        queued = list(session.scalars(text("SELECT prediction_id FROM review_items")))
        dead = list(session.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id)))
    return audit, queued, dead


def _metric(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _check_exactly_once(
    backend: str, traffic: Traffic, audit: list[str], queued: list[str], dead: list[dict[str, Any]]
) -> None:
    refused = traffic.refused_on(backend)
    want_audit = [r.prediction_id for r in traffic.audit if r.prediction_id not in refused]
    want_items = [i.prediction_id for i in traffic.items if i.prediction_id not in refused]
    assert max(Counter(audit).values()) == 1 and max(Counter(queued).values()) == 1  # never twice
    assert sorted(audit) == sorted(want_audit)  # every good audit record, none missing
    assert sorted(queued) == sorted(str(pid) for pid in want_items)  # every good review item
    assert sorted(d["prediction_id"] for d in dead) == sorted(refused)  # each poison record, once
    for letter in dead:
        kind = traffic.poison[letter["prediction_id"]]
        assert POISON[kind][backend] in letter["reason"], (kind, letter["reason"])
        assert letter["payload"].isascii()


def _row(letter: DeadLetterRow) -> dict[str, Any]:
    return {"prediction_id": letter.prediction_id, "reason": letter.reason, "payload": letter.payload}


def test_poison_among_good_records_is_dead_lettered_and_the_rest_written_once(
    backend: Backend, tmp_path: Path
) -> None:
    engine = backend.engine()
    backend.create()
    migrate(engine)
    metrics = ServiceMetrics()
    writer = _writer(engine, tmp_path / "spool", metrics)
    writer.start()
    traffic = Traffic.make()
    for start in range(0, len(traffic.audit), 7):
        writer.record(traffic.audit[start : start + 7])
    ids: list[int | None] = []
    for start in range(0, len(traffic.items), 10):  # as requests do: a few items per call
        ids.extend(writer.add_review_items(traffic.items[start : start + 10]))
    assert writer.flush(60)
    writer.close()
    audit, queued, dead = _stored(engine)
    engine.dispose()

    refused = traffic.refused_on(backend.name)
    print(
        f"\n{backend.name} direct writes: sent {len(traffic.audit)} audit records and {len(traffic.items)}"
        f" review items ({len(traffic.poison)} poisoned, {len(refused)} refused by this backend);"
        f" stored {len(audit)} audit records, {len(queued)} review items; dead letters {len(dead)}"
        f" ({', '.join(sorted(traffic.poison[d.prediction_id or ''] + '/' + d.kind for d in dead))});"
        f" spooled {writer.counts.spooled}"
    )
    _check_exactly_once(backend.name, traffic, audit, queued, [_row(d) for d in dead])
    assert writer.counts.spooled == 0  # a data error is no outage: nothing waited in the spool
    for item, review_id in zip(traffic.items, ids, strict=True):
        assert (review_id is None) == (item.prediction_id in refused)
    for kind in ("audit", "review"):
        assert _metric(metrics, "triage_dead_letter_total", kind=kind) == len(refused) / 2
    assert not (tmp_path / "spool" / FILE_NAME).exists()  # the table took every dead letter


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_poison_in_the_spool_and_in_an_old_spool_does_not_block_replay(
    backend: Backend, tmp_path: Path
) -> None:
    """The database is unreachable (not created yet) while poisoned traffic arrives, and a spool left by
    an earlier process (before a restart) holds poison too; once the database answers, both spools drain."""
    spool_dir = tmp_path / "spool"
    old = Traffic.make(start=5000).without("huge_int")  # JSON cannot write it: it never reached a spool
    previous = Spool(spool_dir)  # the process before the restart
    previous.append(
        [{"kind": "audit", "data": r.to_json()} for r in old.audit]
        + [{"kind": "review", "data": encode_review(i)} for i in old.items]
    )
    with open(previous.path, "ab") as handle:
        handle.write(b'{"kind": "audit", "data": {"prediction_id"\n')  # a whole line that is not JSON
    previous.close()  # the file stays for the next process to adopt

    engine = backend.engine()
    metrics = ServiceMetrics()
    writer = _writer(engine, spool_dir, metrics, prepare=lambda: migrate(engine))
    writer.start()
    traffic = Traffic.make()
    for start in range(0, len(traffic.audit), 7):
        writer.record(traffic.audit[start : start + 7])
    for start in range(0, len(traffic.items), 10):
        assert writer.add_review_items(traffic.items[start : start + 10]) == [None] * len(
            traffic.items[start : start + 10]
        )
    unspoolable = 2  # the two huge-integer records: dead-lettered to the file, the table being down
    _wait(lambda: writer.counts.spooled == len(traffic.audit) + len(traffic.items) - unspoolable, "the spool")
    in_file = DeadLetterStore(engine, spool_dir).file_entries()
    assert sorted(e["prediction_id"] for e in in_file) == sorted(
        pid for pid, kind in traffic.poison.items() if kind == "huge_int"
    )
    assert all(e["reason"].startswith("cannot be written as JSON") for e in in_file)

    backend.create()  # the database answers now
    assert writer.flush(120)
    writer.close()
    audit, queued, dead = _stored(engine)
    engine.dispose()

    everything = Traffic(
        old.audit + traffic.audit, old.items + traffic.items, {**old.poison, **traffic.poison}
    )
    raw = [d for d in dead if d.kind == "unknown"]
    letters = [_row(d) for d in dead if d.kind != "unknown"] + in_file
    print(
        f"\n{backend.name} spool replay: old spool {len(old.audit) + len(old.items) + 1} lines, live"
        f" traffic {len(traffic.audit) + len(traffic.items)} records; stored {len(audit)} audit records,"
        f" {len(queued)} review items; dead letters {len(dead)} in the table ({len(raw)} not JSON),"
        f" {len(in_file)} in the file; spooled {writer.counts.spooled}, replayed {writer.counts.replayed}"
    )
    _check_exactly_once(backend.name, everything, audit, queued, letters)
    assert len(raw) == 1 and '"prediction_id"' in json.loads(raw[0].payload)["raw_line"]
    assert not list(spool_dir.glob("spool-*"))  # both spools replayed and removed
    assert _metric(metrics, "triage_dead_letter_total", kind="unknown") == 1


def test_bisection_finds_one_poison_record_in_few_attempts(tmp_path: Path) -> None:
    """Halving finds one record at fault among 500 in about 2 log2(500) writes, not 500."""
    engine = make_engine(f"sqlite+pysqlite:///{tmp_path / 'db.sqlite3'}")
    migrate(engine)
    records = [_audit(n) for n in range(500)]
    records[333] = _poisoned_audit("lone_surrogate", 333)
    attempts = 0

    def write(chunk: list[AuditRecord]) -> list[None]:
        nonlocal attempts
        attempts += 1
        insert_audit(engine, chunk)
        return [None] * len(chunk)

    _, faulty = isolate(records, write)
    with Session(engine) as session:
        stored = list(session.scalars(text("SELECT prediction_id FROM prediction_audit ORDER BY id")))
    engine.dispose()
    print(f"\nbisection: 1 poison record among 500 found in {attempts} write attempts")
    assert [i for i, _ in faulty] == [333]
    assert stored == [r.prediction_id for i, r in enumerate(records) if i != 333]  # in order, once
    assert attempts <= 2 * 9 + 1


def test_dead_letters_are_listed_and_requeued_once_their_cause_is_fixed(tmp_path: Path) -> None:
    """The operator's path, on PostgreSQL: `triage dead-letter list` shows the entries and reasons; after a
    fix (here the ticket_id column widened) `requeue` hands them back, the running writer replays them, and
    an entry still at fault (NaN) comes back with its reason."""
    from typer.testing import CliRunner

    from ticket_triage.cli import app

    name = f"triage_requeue_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    engine = make_engine(url)
    try:
        migrate(engine)
        spool_dir = tmp_path / "spool"
        writer = _writer(engine, spool_dir, ServiceMetrics())
        writer.start()
        long_id = _poisoned_item("digits_300", 1)
        nan = _poisoned_audit("nan", 2)
        good = _item(0)
        first, second = writer.add_review_items([good, long_id])
        assert isinstance(first, int) and second is None
        writer.record([nan])
        assert writer.flush(30)
        env = {"TRIAGE_DATABASE_URL": url, "TRIAGE_SPOOL_DIR": str(spool_dir)}
        runner = CliRunner()
        listed = runner.invoke(app, ["dead-letter", "list"], env=env)
        assert listed.exit_code == 0, listed.output
        assert long_id.prediction_id in listed.output and "StringDataRightTruncation" in listed.output
        assert nan.prediction_id in listed.output and "not JSON compliant" in listed.output

        with engine.begin() as connection:  # the operator's fix for the long ticket ids
            connection.execute(text("ALTER TABLE review_items ALTER COLUMN ticket_id TYPE text"))
        requeued = runner.invoke(app, ["dead-letter", "requeue", "--all"], env=env)
        assert requeued.exit_code == 0, requeued.output
        assert "requeued 2 record(s)" in requeued.output
        _wait(lambda: not list(spool_dir.glob("spool-*.jsonl")), "the writer to adopt the requeued spool")
        assert writer.flush(30)
        writer.close()
        audit, queued, dead = _stored(engine)
        print(
            f"\nrequeue: listed 2 dead letters, requeued 2; stored {len(queued)} review items,"
            f" {len(audit)} audit records; {len(dead)} back in the store ({dead[0].reason if dead else '-'})"
        )
        assert sorted(queued) == sorted([str(good.prediction_id), str(long_id.prediction_id)])
        assert audit == []
        assert [d.prediction_id for d in dead] == [nan.prediction_id]
    finally:
        engine.dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
