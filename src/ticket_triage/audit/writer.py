"""The durable writer: audit records and notifications (the outbox) in background batches, review items
from the request path, and a spool that keeps them all while the database is unreachable.

Ordering rule: once anything is in the spool, every new record goes there too until the spool has been
replayed, so records reach the database in the order they were made. Exactly once: every record carries
its ``prediction_id`` and every table skips ids it already holds, so a replay after a write whose commit
was in doubt (or a replay cut short and repeated) never stores a record twice.

A record's own fault is not an outage: a batch that fails with a data error is split until the records
at fault stand alone (:func:`~ticket_triage.audit.isolate.isolate`); they go to the dead-letter store
with the reason and everything else is written, so one record never blocks the ones behind it.

A full spool is not a reason to drop anything: records the writer already holds (answers already sent)
stay in memory, "held", and are retried; while any are held the writer refuses new work with
:class:`SpoolFullError`, which the service answers with 503 and ``Retry-After``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from ticket_triage.audit.dead_letter import DeadLetterStore
from ticket_triage.audit.entries import (
    AUDIT,
    NOTIFY,
    REVIEW,
    UNKNOWN,
    Entry,
    EntryWriter,
    decode_review,
    encode_review,
    raw_line,
)
from ticket_triage.audit.isolate import describe, is_data_error, isolate
from ticket_triage.audit.records import AuditRecord, delete_older_than, insert_audit, retention_cutoff
from ticket_triage.audit.spool import Spool, SpoolBatch, SpoolFullError, encode_line
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.notify.outbox import Notification, insert_notifications
from ticket_triage.review import NewReviewItem, ReviewStore

log = logging.getLogger(__name__)

RETENTION_EVERY_SECONDS = 3600.0

__all__ = ["DurableWriter", "WriterCounts", "decode_review", "encode_review"]


@dataclass
class WriterCounts:
    """Running totals since start, by record; what the outage test and the metrics report."""

    written: int = 0
    spooled: int = 0
    replayed: int = 0
    write_failures: int = 0
    dead_lettered: int = 0
    #: Calls refused with SpoolFullError (their records were never accepted).
    refused: int = 0


class DurableWriter:
    """Owns one background thread; ``record``, ``notify`` and ``add_review_items`` are safe from any
    thread."""

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
        dead_letters: DeadLetterStore | None = None,
        on_notified: Callable[[], None] | None = None,
    ) -> None:
        """``prepare`` (the schema migration, when it failed at start-up) must succeed once before
        anything is written; until then everything is spooled. ``dead_letters`` defaults to the
        database's table with a file in the spool folder as fallback. ``on_notified`` is called from the
        writer thread whenever notifications may have reached the outbox (the notifier's ``wake``)."""
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
        self._notices: deque[Notification] = deque()
        self._on_notified = on_notified
        #: Accepted entries neither the database nor the spool could take (changed under _spool_lock).
        self._held: list[Entry] = []
        self._spool_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._count_lock = threading.Lock()
        self.counts = WriterCounts()
        self._next_retention = 0.0
        self._busy = False
        self._prepare = prepare
        self._entries = EntryWriter(
            engine,
            store,
            dead_letters or DeadLetterStore(engine, spool.directory, metrics),
            batch_size=batch_size,
            clock=self._clock,
            on_dead_letter=lambda n: self._count(dead_lettered=n),
        )

    # --- called by the service ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="triage-durable-writer", daemon=True)
        self._thread.start()

    def ensure_accepting(self) -> None:
        """Raise SpoolFullError while records wait in memory for a full spool or a database to come back;
        the service calls it before doing a request's work, so what it accepts it can also keep."""
        if self._held:
            self._count(refused=1)
            raise self._full_error()

    def record(self, records: Sequence[AuditRecord]) -> None:
        """Never blocks, raises or touches the database: the writer thread picks them up."""
        self._queue.extend(records)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    def notify(self, items: Sequence[Notification]) -> None:
        """Hand decisions to the outbox: like ``record``, never blocks, raises or touches the database."""
        self._notices.extend(items)
        if len(self._notices) >= self._batch_size:
            self._wake.set()

    def add_review_items(self, items: Sequence[NewReviewItem]) -> list[int | None]:
        """Queue the items now (the answer carries their ids), or spool them: then the ids are None.

        An item the database refuses on its own (a data error) is dead-lettered, its id None; the others
        are queued. Raises SpoolFullError, keeping none of them, when they can be neither queued nor
        spooled."""
        if not items:
            return []
        if self._held:
            self._count(refused=1)
            raise self._full_error()
        if self._prepare is None and not self._spool.pending:
            try:
                # By prediction id: an answer the ticket ledger replays hands its item in again, in
                # case the process that made it died before the item was kept.
                ids = self._store.add_items(items, skip_existing=True)
            except Exception as exc:  # any failure: the items must not be lost
                if is_data_error(exc):
                    isolated = self._add_isolating(items, exc)
                    if isolated is not None:
                        return isolated
                else:
                    log.warning(
                        "review store write failed (%s); spooling %d item(s)", describe(exc), len(items)
                    )
                self._count(write_failures=1)
            else:
                self._count(written=len(items))
                return list(ids)
        try:
            self._to_spool([{"kind": REVIEW, "data": encode_review(item)} for item in items], hold=False)
        except SpoolFullError:
            self._count(refused=1)
            raise
        self._wake.set()
        return [None] * len(items)

    def keep_review_items(self, items: Sequence[NewReviewItem]) -> None:
        """Items whose answer already went out (its caller stopped waiting) but that ``add_review_items``
        could not keep: spooled, or held in memory while the spool is full. Never raises."""
        self._to_spool([{"kind": REVIEW, "data": encode_review(item)} for item in items], hold=True)
        self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is stored (not just spooled); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            idle = not self._queue and not self._notices and not self._busy
            if idle and not self._spool.pending and not self._held:
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
        if self._held:
            log.error(
                "stopping with %d record(s) that neither the database nor the full spool could take",
                len(self._held),
            )
        self._spool.close()

    @property
    def queued(self) -> int:
        """Audit records and notifications waiting in memory for the next batch."""
        return len(self._queue) + len(self._notices)

    @property
    def spool_full(self) -> bool:
        """True while accepted records wait in memory because the spool could not take them."""
        return bool(self._held)

    # --- the writer thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            self._busy = True
            try:
                self._cycle(final=stopping)
            except Exception as exc:  # keep the thread alive whatever a cycle hits
                log.error("durable writer cycle failed (%s); retrying", describe(exc))
            finally:
                self._busy = False
            if stopping:
                return
            waiting = self._spool.pending or bool(self._held)
            self._wake.wait(self._retry_seconds if waiting else self._flush_seconds)
            self._wake.clear()

    def _cycle(self, *, final: bool) -> None:
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception as exc:
                log.warning("database not ready (%s); spooling", describe(exc))
                self._spool_queue()
                return
            self._prepare = None
        self._replay_orphans()
        if self._spool.pending or self._held:
            self._spool_queue()  # keep order: nothing overtakes what waits in the spool (or in memory)
            if self._spool.pending:
                batch = self._spool.read()
                if not self._replay(batch):
                    return
                self._spool.consumed(batch.upto)
                self._notified()
            if self._held and not self._store_held():
                return
        self._write_queue()
        if not final:
            self._apply_retention()

    def _write_queue(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            try:
                insert_audit(self._engine, batch, skip_existing=True)  # replayed answers come again
            except Exception as exc:
                if is_data_error(exc) and self._write_isolating(AUDIT, batch, exc):
                    continue
                log.warning("audit write failed (%s); spooling %d record(s)", describe(exc), len(batch))
                self._count(write_failures=1)
                self._to_spool([{"kind": AUDIT, "data": r.to_json()} for r in batch], hold=True)
                self._spool_queue()
                return
            self._count(written=len(batch))
        if not self._write_notices():
            return
        if self.queued > self._queue_max:
            self._spool_queue()

    def _write_notices(self) -> bool:
        """As the audit loop above, for the outbox; False when the database failed (all spooled)."""
        while self._notices:
            batch = [self._notices.popleft() for _ in range(min(self._batch_size, len(self._notices)))]
            try:
                # Known ids are skipped: a ticket version answered again from the ledger repeats its id.
                insert_notifications(self._engine, batch, skip_existing=True)
            except Exception as exc:
                if is_data_error(exc) and self._write_isolating(NOTIFY, batch, exc):
                    self._notified()
                    continue
                log.warning(
                    "outbox write failed (%s); spooling %d notification(s)", describe(exc), len(batch)
                )
                self._count(write_failures=1)
                self._to_spool([{"kind": NOTIFY, "data": n.to_json()} for n in batch], hold=True)
                self._spool_queue()
                return False
            self._count(written=len(batch))
            self._notified()
        return True

    def _notified(self) -> None:
        if self._on_notified is None:
            return
        try:
            self._on_notified()
        except Exception as exc:  # a listener's fault must not stop the writer
            log.warning("notification listener failed (%s)", describe(exc))

    def _write_isolating(
        self, kind: str, batch: Sequence[AuditRecord | Notification], error: BaseException
    ) -> bool:
        """The batch failed on its data: write all but the faulty records; False on an outage meanwhile."""
        write: Callable[[list[Any]], list[None]] = (
            self._entries.insert_notifications if kind == NOTIFY else self._entries.insert_audit
        )
        try:
            _, faulty = isolate(batch, write, first_error=error)
            self._entries.dead_letter(
                [({"kind": kind, "data": batch[i].to_json()}, describe(e)) for i, e in faulty]
            )
        except Exception as exc:
            log.warning("isolating a faulty %s record failed (%s)", kind, describe(exc))
            return False
        self._count(written=len(batch) - len(faulty))
        return True

    def _add_isolating(self, items: Sequence[NewReviewItem], error: BaseException) -> list[int | None] | None:
        """As :meth:`_write_isolating` for review items on the request path; None on an outage."""
        try:
            ids, faulty = isolate(items, self._entries.add_items, first_error=error)
            self._entries.dead_letter(
                [({"kind": REVIEW, "data": encode_review(items[i])}, describe(e)) for i, e in faulty]
            )
        except Exception as exc:
            log.warning("isolating a faulty review item failed (%s); spooling them", describe(exc))
            return None
        self._count(written=len(items) - len(faulty))
        return ids

    def _spool_queue(self) -> None:
        entries: list[Entry] = []
        while self._queue:
            entries.append({"kind": AUDIT, "data": self._queue.popleft().to_json()})
        while self._notices:
            entries.append({"kind": NOTIFY, "data": self._notices.popleft().to_json()})
        self._to_spool(entries, hold=True)

    def _to_spool(self, entries: list[Entry], *, hold: bool) -> None:
        """Append to the spool, after anything held (in order). A record JSON cannot hold is dead-lettered.

        When the spool cannot take them: ``hold`` (records already accepted: the writer thread's) keeps
        them in memory and the writer refuses new work until they are stored; otherwise (a request still
        waiting for its answer) SpoolFullError is raised and nothing is kept."""
        with self._spool_lock:
            if self._held and not hold:
                raise self._full_error()
            if not entries and not self._held:
                return
            entries = self._held + entries
            lines: list[bytes] = []
            kept: list[Entry] = []
            faulty: list[tuple[Entry, str]] = []
            for entry in entries:
                try:
                    lines.append(encode_line(entry))
                except (ValueError, TypeError, RecursionError) as exc:
                    faulty.append((entry, f"cannot be written as JSON: {describe(exc)}"))
                else:
                    kept.append(entry)
            try:
                self._entries.dead_letter(faulty)
                entries = kept  # dead-lettered: not to be kept or retried again
                self._spool.append_lines(lines)
            except Exception as exc:
                if not hold:
                    if isinstance(exc, SpoolFullError):
                        raise
                    raise SpoolFullError(f"the spool folder cannot be written: {describe(exc)}") from exc
                if not self._held:
                    log.error(
                        "spool cannot take %d record(s) (%s) and the database is unavailable: holding them"
                        " in memory and refusing new work until one of them is back",
                        len(entries),
                        describe(exc),
                    )
                self._held = entries
                self._gauges()
                return
            self._held = []
            self._count(spooled=len(kept))

    def _store_held(self) -> bool:
        """The spool is empty and the database answers: store what was held in memory."""
        with self._spool_lock:
            held = list(self._held)
        try:
            stored, _ = self._entries.store(held)
        except Exception as exc:
            log.warning(
                "writing held records failed (%s); retrying in %.1f s", describe(exc), self._retry_seconds
            )
            return False
        done = {id(entry) for entry in held}
        with self._spool_lock:  # by identity: the list may have been spooled and refilled meanwhile
            self._held = [entry for entry in self._held if id(entry) not in done]
        self._count(written=stored)
        self._notified()
        log.info("stored %d record(s) held in memory while the spool was full", stored)
        return True

    def _replay(self, batch: SpoolBatch) -> bool:
        """Store a spool's records in file order; False (nothing consumed) if the database refuses.

        Records at fault go to the dead-letter store, so they cannot hold up the rest of the file."""
        entries = batch.records
        not_json = [
            ({"kind": UNKNOWN, "data": raw_line(line)}, "spool line is not JSON") for line in batch.bad_lines
        ]
        try:
            stored, _ = self._entries.store(entries, not_json)
        except Exception as exc:
            log.warning("spool replay failed (%s); retrying in %.1f s", describe(exc), self._retry_seconds)
            return False
        # Counted once the whole file is stored: a replay cut short is repeated in full (idempotently).
        self._count(replayed=stored)
        if entries:
            log.info("replayed %d spooled record(s)", stored)
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
            log.warning("audit retention failed (%s); next try in an hour", describe(exc))
            return
        if removed:
            log.info("audit retention removed %d record(s) before %s", removed, cutoff.isoformat())

    def _full_error(self) -> SpoolFullError:
        return SpoolFullError(
            f"the database is unavailable and the spool cannot be written; {len(self._held)} accepted"
            " record(s) wait in memory, so no new work is taken",
            retry_after_seconds=max(1.0, self._retry_seconds),
        )

    def _count(self, **deltas: int) -> None:
        with self._count_lock:
            for name, value in deltas.items():
                setattr(self.counts, name, getattr(self.counts, name) + value)
        if self._metrics is not None:
            for name, value in deltas.items():
                self._metrics.durable_records.labels(outcome=name).inc(value)
        self._gauges()

    def _gauges(self) -> None:
        if self._metrics is not None:
            self._metrics.spool_pending.set(1.0 if self._spool.pending or self._held else 0.0)
            self._metrics.spool_full.set(1.0 if self._held else 0.0)
