"""The dead-letter store: records no database will take, kept with the reason instead of retried forever.

A record lands here when writing it alone fails with a data error (see :mod:`ticket_triage.audit.isolate`),
when its spool line is not JSON, or when JSON cannot hold it at all. It goes to the ``dead_letters`` table;
if the table cannot take it (the database is down, or the table is gone) to ``dead-letters.jsonl`` in the
spool folder (0600, one JSON object a line). Payloads are stored as ASCII JSON text, so the values that
poisoned the record (lone surrogates, NUL, NaN, huge integers) survive as escapes and every database can
hold them. ``triage dead-letter list`` shows both; ``triage dead-letter requeue`` puts entries back in a
spool file that the running service adopts and replays like any other (an entry still at fault comes back).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Index, String, Text, delete, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ticket_triage.audit.isolate import describe
from ticket_triage.audit.spool import FILE_MODE, Spool, SpoolFullError, make_private_dir, write_at
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.review.db import SQLITE_IMMEDIATE
from ticket_triage.review.models import Base, IdType, UTCDateTime, as_utc

log = logging.getLogger(__name__)

FILE_NAME = "dead-letters.jsonl"
KINDS = ("audit", "review", "notify", "unknown")
#: Deeper than this, a payload that JSON cannot encode as it is keeps the rest as its repr (cut short).
_MAX_DEPTH = 100
_PREDICTION_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


class DeadLetterRow(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    prediction_id: Mapped[str | None] = mapped_column(String(64))
    #: SHA-256 of kind and payload: a replay that dead-letters the same record again adds no second row.
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (
        Index("ux_dead_letters_fingerprint", "fingerprint", unique=True),
        Index("ix_dead_letters_failed_at", "failed_at"),
    )


class DeadLetterError(RuntimeError):
    """Neither the table nor the file could take the record: the caller keeps it and retries later."""


@dataclass(frozen=True)
class DeadLetter:
    kind: str
    reason: str
    #: The record as ASCII JSON text (what the spool would hold; see :func:`encode_payload`).
    payload: str
    prediction_id: str | None
    failed_at: datetime

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.kind}\n{self.payload}".encode("ascii")).hexdigest()

    @classmethod
    def of(cls, kind: str, data: Any, reason: str, now: datetime | None = None) -> DeadLetter:
        pid = data.get("prediction_id") if isinstance(data, dict) else None
        return cls(
            kind=kind if kind in KINDS else "unknown",
            reason=reason,
            payload=encode_payload(data),
            prediction_id=pid if isinstance(pid, str) and _PREDICTION_ID.fullmatch(pid) else None,
            failed_at=as_utc(now or datetime.now(UTC)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "prediction_id": self.prediction_id,
            "fingerprint": self.fingerprint,
            "reason": self.reason,
            "failed_at": self.failed_at.isoformat(),
            "payload": self.payload,
        }


def encode_payload(data: Any) -> str:
    """ASCII JSON of ``data``; what plain JSON cannot write (an integer past 4,300 digits, a cycle, depth
    beyond the recursion limit) is rewritten first: big integers as ``{"$int_hex": "0x…"}``, anything
    else as its type name."""
    try:
        return json.dumps(data, ensure_ascii=True, separators=(",", ":"), default=_type_name)
    except (ValueError, TypeError, RecursionError):
        return json.dumps(_portable(data, 0), ensure_ascii=True, separators=(",", ":"), default=_type_name)


def _type_name(value: Any) -> str:
    return f"<{type(value).__name__}>"


def _portable(value: Any, depth: int) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**4000 else {"$int_hex": hex(value)}
    if depth >= _MAX_DEPTH:
        return f"<{type(value).__name__} nested deeper than {_MAX_DEPTH} levels>"
    if isinstance(value, dict):
        return {str(k): _portable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_portable(v, depth + 1) for v in value]
    return _type_name(value)


@dataclass(frozen=True)
class Requeued:
    spooled: int
    skipped: list[str]


class DeadLetterStore:
    """Puts records in the table, else in the file; counts them in ``triage_dead_letter_total``."""

    def __init__(self, engine: Engine, directory: Path, metrics: ServiceMetrics | None = None) -> None:
        self._engine = engine.execution_options(**{SQLITE_IMMEDIATE: True})
        self.directory = directory
        self.path = directory / FILE_NAME
        self._metrics = metrics

    def put(self, letters: Sequence[DeadLetter]) -> str:
        """Store them; returns "table" or "file". Raises DeadLetterError when neither can take them."""
        if not letters:
            return "table"
        try:
            self._to_table(letters)
            where = "table"
        except Exception as exc:
            log.warning("dead-letter table unavailable (%s); using %s", describe(exc), self.path)
            try:
                self._to_file(letters)
            except (OSError, SpoolFullError) as file_exc:
                raise DeadLetterError(f"dead-letter file {self.path} cannot be written: {file_exc}") from exc
            where = "file"
        for letter in letters:
            # Never the payload: the log says which record and why, the store keeps what it held.
            log.error(
                "dead letter: %s record (prediction_id=%s) kept in the %s: %s",
                letter.kind,
                letter.prediction_id,
                where,
                letter.reason,
            )
            if self._metrics is not None:
                self._metrics.dead_letters.labels(kind=letter.kind).inc()
        return where

    def _to_table(self, letters: Sequence[DeadLetter]) -> None:
        with self._engine.begin() as connection:
            prints = list({letter.fingerprint for letter in letters})
            known = set(
                connection.scalars(
                    select(DeadLetterRow.fingerprint).where(DeadLetterRow.fingerprint.in_(prints))
                )
            )
            rows = []
            for letter in letters:
                if letter.fingerprint in known:
                    continue
                known.add(letter.fingerprint)
                rows.append({**letter.to_json(), "failed_at": letter.failed_at})
            if rows:
                connection.execute(insert(DeadLetterRow), rows)

    def _to_file(self, letters: Sequence[DeadLetter]) -> None:
        """Appended under an exclusive lock (workers share the folder), fsynced, all lines or none."""
        make_private_dir(self.directory)
        payload = b"".join(
            json.dumps(letter.to_json(), ensure_ascii=True).encode("ascii") + b"\n" for letter in letters
        )
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            write_at(fd, payload, os.fstat(fd).st_size, f"dead-letter file {self.path.name}")
        finally:
            os.close(fd)

    def table_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest ``limit`` entries of the table, newest first."""
        found: list[dict[str, Any]] = []
        with Session(self._engine) as session:
            query = select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit)
            for row in session.scalars(query):
                found.append(
                    {
                        "store": "table",
                        "id": row.id,
                        "kind": row.kind,
                        "prediction_id": row.prediction_id,
                        "fingerprint": row.fingerprint,
                        "reason": row.reason,
                        "failed_at": row.failed_at.isoformat(),
                        "payload": row.payload,
                    }
                )
        return found

    def drop_file_entries(self, fingerprints: set[str]) -> None:
        """Rewrite the file without these entries (under its lock, replaced atomically)."""
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            keep = [
                line
                for line in self.path.read_bytes().splitlines(keepends=True)
                if line.strip() and json.loads(line).get("fingerprint") not in fingerprints
            ]
            temporary = self.path.with_suffix(".tmp")
            out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            try:
                write_at(out, b"".join(keep), 0, f"dead-letter file {temporary.name}")
            finally:
                os.close(out)
            os.replace(temporary, self.path)
        finally:
            os.close(fd)

    def file_entries(self) -> list[dict[str, Any]]:
        """Every entry of the fallback file, oldest first."""
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        return [{"store": "file", **json.loads(line)} for line in lines if line.strip()]

    def requeue(self, ids: Sequence[int] | None, *, with_file: bool = False) -> Requeued:
        """Move table entries (``ids``, or all of them for None) and optionally every file entry back into a
        spool file of their own, which a writer adopts as it adopts a dead process's spool: it is replayed by
        the usual path, so a record still at fault is dead-lettered again and the rest are stored once.

        Entries that cannot be replayed are left where they are: a spool line that was not JSON (kind
        "unknown"), and payloads JSON could not write as they were (a huge integer kept as ``$int_hex``)."""
        with Session(self._engine) as session:
            query = select(DeadLetterRow).order_by(DeadLetterRow.id)
            if ids is not None:
                query = query.where(DeadLetterRow.id.in_(list(ids)))
            rows = [(row.id, row.kind, row.payload) for row in session.scalars(query)]
        from_file = [(entry["fingerprint"], entry["kind"], entry["payload"]) for entry in self.file_entries()]
        entries: list[dict[str, Any]] = []
        table_ids: list[int] = []
        file_prints: set[str] = set()
        skipped: list[str] = []
        for where, (key, kind, payload) in [("table", r) for r in rows] + [
            ("file", f) for f in from_file if with_file
        ]:
            if kind not in KINDS or kind == "unknown" or '"$int_hex"' in payload:
                skipped.append(f"{where} {key}: {kind} record cannot be replayed")
                continue
            entries.append({"kind": kind, "data": json.loads(payload)})
            if where == "table":
                table_ids.append(int(key))
            else:
                file_prints.add(str(key))
        if entries:
            spool = Spool(self.directory)
            spool.append(entries)
            spool.close()  # stays for the writer to adopt: its lock is free now
        if table_ids:
            with self._engine.begin() as connection:
                connection.execute(delete(DeadLetterRow).where(DeadLetterRow.id.in_(table_ids)))
        if file_prints:
            self.drop_file_entries(file_prints)
        return Requeued(len(entries), skipped)
