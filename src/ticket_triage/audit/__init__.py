"""Audit log of every prediction, and the durable writer that keeps it (and review items) through outages."""

from __future__ import annotations

from ticket_triage.audit.dead_letter import DeadLetter, DeadLetterError, DeadLetterStore
from ticket_triage.audit.records import AuditRecord, AuditRow, count_audit, insert_audit
from ticket_triage.audit.spool import Spool, SpoolFullError
from ticket_triage.audit.writer import DurableWriter, WriterCounts

__all__ = [
    "AuditRecord",
    "AuditRow",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterStore",
    "DurableWriter",
    "Spool",
    "SpoolFullError",
    "WriterCounts",
    "count_audit",
    "insert_audit",
]
