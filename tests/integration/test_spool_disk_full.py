"""The spool on a full disk (a real 256 KiB tmpfs) while the database (a private PostgreSQL) is down: no
torn line is kept, new work is refused with SpoolFullError, nothing accepted is dropped, and once space and
the database are back every accepted record is stored exactly once. Also: state files are created private."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import HTTPException
from sqlalchemy import text
from tests.integration.conftest import PrivatePostgres

from ticket_triage.audit import (
    AuditRecord,
    DeadLetter,
    DeadLetterStore,
    DurableWriter,
    Spool,
    SpoolFullError,
)
from ticket_triage.config import Settings
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.review import NewReviewItem, ReviewStore, make_engine, migrate

PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs of our own (we are root); unmounted afterwards."""
    where = tmp_path / "small-disk"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free byte of the disk, in ever smaller writes, and return the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (64 * 1024, 4096, 512, 64, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def _lines(path: Path) -> list[dict]:
    data = path.read_bytes() if path.exists() else b""
    assert data == b"" or data.endswith(b"\n"), "a torn last line was kept"
    return [json.loads(line) for line in data.splitlines()]


def _audit(n: int) -> AuditRecord:
    return AuditRecord(
        prediction_id=uuid.uuid4().hex,
        predicted_at=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=n),
        model_version="v1",
        category="billing",
        confidence=0.6,
        route="auto",
        cached=False,
        latency_ms=1.0,
        endpoint="predict",
        ticket_id=f"T-{n}",
        signals={"text_length": float(n)},
    )


def _item(n: int) -> NewReviewItem:
    return NewReviewItem(
        predicted_category="billing",
        confidence=0.41,
        model_version="v1",
        top_labels=(("billing", 0.41), ("technical", 0.33)),
        ticket_id=f"T-{n}",
        subject=f"subject {n}",
        description="the invoice is wrong " * 20,
        prediction_id=uuid.uuid4().hex,
    )


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_an_append_the_disk_takes_only_in_part_is_cut_back(small_disk: Path) -> None:
    spool = Spool(small_disk)
    record = {"kind": "audit", "data": {"text": "x" * 1000}}
    accepted = 0
    with pytest.raises(SpoolFullError) as refused:
        while True:
            spool.append([record])
            accepted += 1
    room = -spool.size % PAGE  # what was left in the file's last page: the failed write filled it first
    on_disk = spool.path.stat().st_size
    print(
        f"\nfull disk: {accepted} appends accepted ({spool.size} bytes), the next one refused"
        f" ({refused.value}); {room} bytes of it had fit and were cut back; file {on_disk} bytes"
    )
    assert room > 0  # the refused append was written in part, so there was a torn line to cut
    assert on_disk == spool.size
    assert len(_lines(spool.path)) == accepted
    spool.close()  # leaves the file, as a process stopping with records unreplayed would
    assert len(_lines(spool.path)) == accepted


def test_full_spool_with_the_database_down_refuses_new_work_and_loses_nothing(
    small_disk: Path, private_postgres: PrivatePostgres
) -> None:
    pg = private_postgres
    engine = make_engine(pg.url)
    migrate(engine)
    metrics = ServiceMetrics()
    spool = Spool(small_disk)
    writer = DurableWriter(
        engine,
        ReviewStore(engine, lease_seconds=60),
        spool,
        batch_size=50,
        flush_seconds=0.02,
        queue_max=10_000,
        retry_seconds=0.05,
        retention_days=0,
        metrics=metrics,
    )
    writer.start()
    audit: list[AuditRecord] = []
    items: list[NewReviewItem] = []
    refused: list[NewReviewItem] = []
    n = 0

    def accept(n_audit: int, n_items: int) -> list[int | None]:
        """As the service does per request: admission, then review items, then the audit records."""
        nonlocal n
        writer.ensure_accepting()
        batch = [_item(n + i) for i in range(n_items)]
        ids = writer.add_review_items(batch)
        items.extend(batch)
        records = [_audit(n + i) for i in range(n_audit)]
        writer.record(records)
        audit.extend(records)
        n += max(n_audit, n_items)
        return ids

    # The database is up: written directly.
    assert all(isinstance(i, int) for i in accept(40, 10))
    assert writer.flush(30)

    # The database goes down: everything is spooled.
    pg.stop("fast")
    for _ in range(6):
        assert accept(10, 4) == [None] * 4
    _wait(lambda: writer.counts.spooled == 60 + 24, "the outage's records in the spool")

    # The spool's disk fills up.
    filler = _fill(small_disk)
    before = spool.path.read_bytes()
    room = -len(before) % PAGE
    late = [_item(10_000 + i) for i in range(3)]
    with pytest.raises(SpoolFullError):
        writer.add_review_items(late)  # a request still waiting for its answer: refused, not kept
    refused.extend(late)
    assert spool.path.read_bytes() == before  # the part of it that fit was cut back: no torn line
    records = [_audit(20_000 + i) for i in range(30)]
    writer.record(records)  # answers already sent: accepted, so they must be kept
    audit.extend(records)
    _wait(lambda: writer.spool_full, "the writer to hold what the spool cannot take")
    with pytest.raises(SpoolFullError) as full:
        accept(1, 1)  # a new request is refused before any work is done
    one_more = _item(30_000)
    with pytest.raises(SpoolFullError):
        writer.add_review_items([one_more])
    refused.append(one_more)
    assert spool.path.read_bytes() == before
    assert metrics.registry.get_sample_value("triage_spool_full") == 1.0
    answer = _service_refusal(writer, metrics)
    assert answer.status_code == 503 and answer.headers == {"Retry-After": "1"}, answer
    spooled_lines_while_full = len(_lines(spool.path))

    # Space returns (the database is still down): what was held goes to the spool, work is taken again.
    filler.unlink()
    _wait(lambda: not writer.spool_full, "the held records to reach the spool")
    assert accept(10, 5) == [None] * 5
    _wait(lambda: len(_lines(spool.path)) == 84 + 30 + 15, "the spool to hold every accepted record")

    # The database returns: the spool drains.
    pg.start()
    assert writer.flush(120)
    writer.close()
    with engine.connect() as connection:
        stored_audit = list(connection.scalars(text("SELECT prediction_id FROM prediction_audit")))
        stored_items = list(connection.scalars(text("SELECT prediction_id FROM review_items")))
    engine.dispose()

    print(
        f"\nspool disk full with the database down: accepted {len(audit)} audit records and {len(items)}"
        f" review items; refused {writer.counts.refused} calls ({full.value.retry_after_seconds:.0f} s"
        f" Retry-After); {room} bytes of a refused append had fit and were cut back; the spool held"
        f" {spooled_lines_while_full} lines while full; stored {len(stored_audit)} audit records and"
        f" {len(stored_items)} review items; spooled {writer.counts.spooled}, replayed"
        f" {writer.counts.replayed}, dead letters {writer.counts.dead_lettered}"
    )
    assert room > 0
    assert max(Counter(stored_audit).values()) == 1 and max(Counter(stored_items).values()) == 1
    assert sorted(stored_audit) == sorted(r.prediction_id for r in audit)
    assert sorted(stored_items) == sorted(str(i.prediction_id) for i in items)
    assert not {i.prediction_id for i in refused} & set(stored_items)
    assert writer.counts.refused == 4 and writer.counts.dead_lettered == 0  # 3 calls and the service's
    assert not list(small_disk.iterdir())  # spool replayed and removed


def _service_refusal(writer: DurableWriter, metrics: ServiceMetrics) -> HTTPException:
    """What the prediction flow raises for the app to answer, while the writer refuses work. Only the writer
    is real: the refusal comes before the model, cache or batcher is touched, so they are left out."""
    from ticket_triage.routing import RoutingPolicy
    from ticket_triage.serving.prediction_flow import PredictionFlow
    from ticket_triage.serving.review_intake import ReviewIntake

    flow = PredictionFlow(
        registry=None,  # type: ignore[arg-type]
        cache=None,  # type: ignore[arg-type]
        batcher=None,  # type: ignore[arg-type]
        writer=writer,
        intake=ReviewIntake(writer),
        metrics=metrics,
        routing=RoutingPolicy(),
    )
    with pytest.raises(HTTPException) as refused:
        asyncio.run(flow.predict([], 1, endpoint="predict"))
    return refused.value


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_files_are_created_private(tmp_path: Path) -> None:
    """With the usual umask (022, which leaves files world-readable), every file holding tickets is 0600 and
    every folder made for them 0700."""
    umask = os.umask(0o022)
    try:
        settings = Settings(database_url=None, database_file=tmp_path / "var" / "review.sqlite3")
        engine = make_engine(settings)
        migrate(engine)
        ReviewStore(engine, lease_seconds=60).add_items([_item(1)])
        database = settings.database_file
        sqlite_files = [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))]
        assert all(p.exists() for p in sqlite_files)

        spool = Spool(tmp_path / "spool")
        spool.append([{"n": 1}, {"n": 2}])
        spool.consumed(spool.read().upto - len(b'{"n":2}\n'))  # keeps a tail: the file is rewritten
        assert [r["n"] for r in spool.read().records] == [2]

        missing = tmp_path / "gone"
        down = make_engine(f"sqlite+pysqlite:///{missing / 'db.sqlite3'}")
        missing.rmdir()  # the table cannot be reached: the dead letter goes to the file
        dead = DeadLetterStore(down, tmp_path / "spool")
        assert dead.put([DeadLetter.of("audit", {"prediction_id": "abc"}, "test")]) == "file"

        files = [*sqlite_files, spool.path, spool.path.with_suffix(".lock"), dead.path]
        folders = [database.parent, spool.directory]
        modes = {str(p.relative_to(tmp_path)): oct(_mode(p)) for p in files + folders}
        print(f"\nstate file modes: {modes}")
        assert all(_mode(p) == 0o600 for p in files), modes
        assert all(_mode(p) == 0o700 for p in folders), modes
        spool.close()
        engine.dispose()
    finally:
        os.umask(umask)
