"""Spool entries (``{"kind": "audit" | "review" | "notify", "data": <the record's JSON>}``) and how they
are stored: decoded, written in batches that skip ids already stored, and the records at fault
dead-lettered."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import Engine

from ticket_triage.audit.dead_letter import DeadLetter, DeadLetterStore
from ticket_triage.audit.isolate import describe, isolate
from ticket_triage.audit.records import AuditRecord, insert_audit
from ticket_triage.notify.outbox import Notification, insert_notifications
from ticket_triage.review import NewReviewItem, ReviewStore

AUDIT = "audit"
REVIEW = "review"
NOTIFY = "notify"
UNKNOWN = "unknown"

Entry = dict[str, Any]


def encode_review(item: NewReviewItem) -> dict[str, Any]:
    data = dataclasses.asdict(item)
    for name in ("created_at", "enqueued_at"):
        if data[name] is not None:
            data[name] = data[name].isoformat()
    data["top_labels"] = [list(pair) for pair in item.top_labels]
    data["predicted_tags"] = None if item.predicted_tags is None else list(item.predicted_tags)
    return data


def decode_review(data: dict[str, Any]) -> NewReviewItem:
    values = dict(data)
    for name in ("created_at", "enqueued_at"):
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    values["top_labels"] = tuple((str(label), float(p)) for label, p in values.get("top_labels") or ())
    if values.get("predicted_tags") is not None:  # spool lines from before tags have no such key
        values["predicted_tags"] = tuple(str(t) for t in values["predicted_tags"])
    return NewReviewItem(**values)


class EntryWriter:
    """Stores entries for the durable writer; ``on_dead_letter`` hears how many were dead-lettered."""

    def __init__(
        self,
        engine: Engine,
        store: ReviewStore,
        dead_letters: DeadLetterStore,
        *,
        batch_size: int,
        clock: Callable[[], datetime],
        on_dead_letter: Callable[[int], None],
    ) -> None:
        self._engine = engine
        self._store = store
        self._dead = dead_letters
        self._batch_size = batch_size
        self._clock = clock
        self._on_dead_letter = on_dead_letter

    def insert_audit(self, records: list[AuditRecord]) -> list[None]:
        insert_audit(self._engine, records)
        return [None] * len(records)

    def insert_notifications(self, items: list[Notification]) -> list[None]:
        insert_notifications(self._engine, items, skip_existing=True)
        return [None] * len(items)

    def add_items(self, items: list[NewReviewItem]) -> list[int]:
        return self._store.add_items(items, skip_existing=True)

    def store(self, entries: Sequence[Any], known_faulty: Sequence[tuple[Any, str]] = ()) -> tuple[int, int]:
        """Write spool entries in order, skipping ids already stored; dead-letter the faulty ones (and
        ``known_faulty``). Returns (stored, dead-lettered). Raises on an outage, or when a dead letter
        cannot be kept."""
        stored = 0
        faulty: list[tuple[Any, str]] = list(known_faulty)
        for kind, group in groupby(entries, key=kind_of):
            rows = list(group)
            for start in range(0, len(rows), self._batch_size):
                chunk = rows[start : start + self._batch_size]
                if kind == REVIEW:
                    stored += self._store_decoded(chunk, decode_review, self.add_items, faulty)
                elif kind == AUDIT:
                    stored += self._store_decoded(chunk, AuditRecord.from_json, self.insert_audit, faulty)
                elif kind == NOTIFY:
                    stored += self._store_decoded(
                        chunk, Notification.from_json, self.insert_notifications, faulty
                    )
                else:
                    faulty.extend((entry, f"spool record of unknown kind {kind!r}") for entry in chunk)
        self.dead_letter(faulty)
        return stored, len(faulty)

    @staticmethod
    def _store_decoded(
        chunk: list[Any],
        decode: Callable[[dict[str, Any]], Any],
        write: Callable[[list[Any]], list[Any]],
        faulty: list[tuple[Any, str]],
    ) -> int:
        decoded: list[Any] = []
        sources: list[Any] = []
        for entry in chunk:
            try:
                decoded.append(decode(entry["data"]))
            except Exception as exc:  # a record this version cannot read back is at fault, not the db
                faulty.append((entry, f"cannot be read back: {describe(exc)}"))
            else:
                sources.append(entry)
        if not decoded:
            return 0
        _, bad = isolate(decoded, write)
        faulty.extend((sources[i], describe(e)) for i, e in bad)
        return len(decoded) - len(bad)

    def dead_letter(self, faulty: Sequence[tuple[Any, str]]) -> None:
        """Raises DeadLetterError when neither the table nor the file can take them."""
        if not faulty:
            return
        now = self._clock()
        self._dead.put(
            [DeadLetter.of(kind_of(entry), data_of(entry), reason, now) for entry, reason in faulty]
        )
        self._on_dead_letter(len(faulty))


def kind_of(entry: Any) -> str:
    return str(entry.get("kind")) if isinstance(entry, dict) else UNKNOWN


def data_of(entry: Any) -> Any:
    return entry.get("data") if isinstance(entry, dict) and "data" in entry else entry


def raw_line(line: bytes) -> dict[str, str]:
    """A spool line that is not JSON, kept as text (undecodable bytes as escapes)."""
    return {"raw_line": line.decode("utf-8", "backslashreplace")}
