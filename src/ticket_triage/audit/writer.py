"""The durable writer: audit records in background batches, review items from the request path, and a
spool that keeps both while the database is unreachable.

Ordering rule: once anything is in the spool, every new record goes there too until the spool has been
replayed, so records reach the database in the order they were made. Exactly once: every record carries
its ``prediction_id`` and both tables skip ids they already hold, so a replay after a write whose commit
was in doubt (or a replay cut short and repeated) never stores a record twice.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from sqlalchemy import Engine

from ticket_triage.audit.records import AuditRecord, delete_older_than, insert_audit, retention_cutoff
from ticket_triage.audit.spool import Spool, SpoolBatch
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.review import NewReviewItem, ReviewStore

log = logging.getLogger(__name__)

AUDIT = "audit"
REVIEW = "review"
RETENTION_EVERY_SECONDS = 3600.0


@dataclass
class WriterCounts:
    """Running totals since start, by record; what the outage test and the metrics report."""

    written: int = 0
    spooled: int = 0
    replayed: int = 0
    write_failures: int = 0


def encode_review(item: NewReviewItem) -> dict[str, Any]:
    data = dataclasses.asdict(item)
    for name in ("created_at", "enqueued_at"):
        if data[name] is not None:
            data[name] = data[name].isoformat()
    data["top_labels"] = [list(pair) for pair in item.top_labels]
    return data


def decode_review(data: dict[str, Any]) -> NewReviewItem:
    values = dict(data)
    for name in ("created_at", "enqueued_at"):
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    values["top_labels"] = tuple((str(label), float(p)) for label, p in values.get("top_labels") or ())
    return NewReviewItem(**values)


class DurableWriter:
    """Owns one background thread; ``record`` and ``add_review_items`` are safe from any thread."""

    def __init__(
        self,
        engine: Engine,
        store: ReviewStore,
        spool: Spool,
        *,
        batch_size: int,
        flush_seconds: float,
        queue_max: int,
        retry_seconds: float,
        retention_days: int,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], datetime] | None = None,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        """``prepare`` (the schema migration, when it failed at start-up) must succeed once before
        anything is written; until then everything is spooled."""
        self._engine = engine
        self._store = store
        self._spool = spool
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._queue_max = queue_max
        self._retry_seconds = retry_seconds
        self._retention_days = retention_days
        self._metrics = metrics
        self._clock = clock or (lambda: datetime.now(UTC))
        self._queue: deque[AuditRecord] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._count_lock = threading.Lock()
        self.counts = WriterCounts()
        self._next_retention = 0.0
        self._busy = False
        self._prepare = prepare

    # --- called by the service ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="triage-durable-writer", daemon=True)
        self._thread.start()

    def record(self, records: Sequence[AuditRecord]) -> None:
        """Never blocks and never touches the database: the writer thread picks them up."""
        self._queue.extend(records)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    def add_review_items(self, items: Sequence[NewReviewItem]) -> list[int | None]:
        """Queue the items now (the answer carries their ids), or spool them: then the ids are None."""
        if not items:
            return []
        if self._prepare is None and not self._spool.pending:
            try:
                ids = self._store.add_items(items)
            except Exception as exc:  # any failure: the items must not be lost
                log.warning("review store write failed (%s); spooling %d item(s)", _short(exc), len(items))
                self._count(write_failures=1)
            else:
                self._count(written=len(items))
                return list(ids)
        self._to_spool([(REVIEW, encode_review(item)) for item in items])
        self._wake.set()
        return [None] * len(items)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is stored (not just spooled); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._queue and not self._spool.pending and not self._busy:
                return True
            self._wake.set()
            time.sleep(0.02)
        return False

    def close(self, timeout: float = 5.0) -> None:
        """Store (or spool) what is still in memory, then stop; the spool file outlives us if not empty."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._spool.close()

    @property
    def queued(self) -> int:
        return len(self._queue)

    # --- the writer thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            self._busy = True
            try:
                self._cycle(final=stopping)
            except Exception:  # keep the thread alive whatever a cycle hits
                log.exception("durable writer cycle failed")
            finally:
                self._busy = False
            if stopping:
                return
            waiting = self._spool.pending
            self._wake.wait(self._retry_seconds if waiting else self._flush_seconds)
            self._wake.clear()

    def _cycle(self, *, final: bool) -> None:
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception as exc:
                log.warning("database not ready (%s); spooling", _short(exc))
                self._spool_queue()
                return
            self._prepare = None
        self._replay_orphans()
        if self._spool.pending:
            self._spool_queue()  # keep order: nothing overtakes what waits in the spool
            batch = self._spool.read()
            if not self._replay(batch):
                return
            self._spool.consumed(batch.upto)
        self._write_queue()
        if not final:
            self._apply_retention()

    def _write_queue(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            try:
                insert_audit(self._engine, batch, skip_existing=False)
            except Exception as exc:
                log.warning("audit write failed (%s); spooling %d record(s)", _short(exc), len(batch))
                self._count(write_failures=1)
                self._to_spool([(AUDIT, r.to_json()) for r in batch])
                self._spool_queue()
                return
            self._count(written=len(batch))
        if len(self._queue) > self._queue_max:
            self._spool_queue()

    def _spool_queue(self) -> None:
        batch: list[AuditRecord] = []
        while self._queue:
            batch.append(self._queue.popleft())
        self._to_spool([(AUDIT, r.to_json()) for r in batch])

    def _to_spool(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        if not records:
            return
        self._spool.append([{"kind": kind, "data": data} for kind, data in records])
        self._count(spooled=len(records))

    def _replay(self, batch: SpoolBatch) -> bool:
        """Store a spool's records in file order; False (nothing consumed) if the database refuses."""
        try:
            for kind, group in groupby(batch.records, key=lambda r: r.get("kind")):
                rows = [r["data"] for r in group]
                for start in range(0, len(rows), self._batch_size):
                    chunk = rows[start : start + self._batch_size]
                    if kind == REVIEW:
                        self._store.add_items([decode_review(d) for d in chunk], skip_existing=True)
                    elif kind == AUDIT:
                        insert_audit(self._engine, [AuditRecord.from_json(d) for d in chunk])
                    else:
                        log.error("spool record of unknown kind %r skipped", kind)
        except Exception as exc:
            log.warning("spool replay failed (%s); retrying in %.1f s", _short(exc), self._retry_seconds)
            return False
        # Counted once the whole file is stored: a replay cut short is repeated in full (idempotently).
        self._count(replayed=len(batch.records))
        if batch.records:
            log.info("replayed %d spooled record(s)", len(batch.records))
        return True

    def _replay_orphans(self) -> None:
        while True:
            with self._spool.orphan() as found:
                if found is None:
                    return
                path, batch = found
                if not self._replay(batch):
                    return
                Spool.discard(path)

    def _apply_retention(self) -> None:
        now = time.monotonic()
        if now < self._next_retention:
            return
        self._next_retention = now + RETENTION_EVERY_SECONDS
        cutoff = retention_cutoff(self._clock(), self._retention_days)
        if cutoff is None:
            return
        try:
            removed = delete_older_than(self._engine, cutoff)
        except Exception as exc:
            log.warning("audit retention failed (%s); next try in an hour", _short(exc))
            return
        if removed:
            log.info("audit retention removed %d record(s) before %s", removed, cutoff.isoformat())

    def _count(self, **deltas: int) -> None:
        with self._count_lock:
            for name, value in deltas.items():
                setattr(self.counts, name, getattr(self.counts, name) + value)
        if self._metrics is not None:
            for name, value in deltas.items():
                self._metrics.durable_records.labels(outcome=name).inc(value)
            self._metrics.spool_pending.set(1.0 if self._spool.pending else 0.0)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
