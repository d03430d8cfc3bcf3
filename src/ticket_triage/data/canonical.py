"""The canonical ticket: how a ticket becomes the frame the feature pipeline reads, and the key of that input.

One home for both, so a cache entry (or an open review item) is shared by exactly the tickets the model
cannot tell apart. The key reads the text *after* the pipeline's own whitespace normalisation, which
keeps line breaks (the readability family counts one as a sentence end), and the creation time to the
minute (the temporal family's fractional hour is computed from whole minutes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd

from ticket_triage.data.schema import CHANNEL, CREATED_AT, TEXT, TEXT_JOINER, TIER, URGENCY
from ticket_triage.features.base import normalize_whitespace


class TicketFields(Protocol):
    """What the model reads of a ticket, whoever holds it (an API request, a queued review item)."""

    @property
    def subject(self) -> str | None: ...
    @property
    def description(self) -> str | None: ...
    @property
    def created_at(self) -> datetime | None: ...
    @property
    def channel(self) -> str | None: ...
    @property
    def customer_tier(self) -> str | None: ...
    @property
    def urgency(self) -> str | None: ...


def join_text(parts: Iterable[str | None]) -> str:
    """A ticket's text fields as one text: each stripped, empty ones left out, ``TEXT_JOINER`` between.

    ``triage --text subject,body`` and the API's subject and description both join here, so a model
    trained from a file reads a served ticket's text the same way.
    """
    stripped = (p.strip() for p in parts if p)
    return TEXT_JOINER.join(p for p in stripped if p)


def field_span(fields: Sequence[tuple[str, str | None]], start: int, end: int) -> tuple[str, int, int] | None:
    """Where ``joined[start:end]`` of :func:`join_text` over ``fields`` (name, value) lies in its field:
    the field's name and the span in that field's own, unstripped value; None across a joiner."""
    at = 0
    for name, value in fields:
        stripped = value.strip() if value else ""
        if not stripped:
            continue
        if at <= start and end <= at + len(stripped):
            lead = len(value) - len(value.lstrip())  # type: ignore[union-attr]  # stripped is non-empty
            return name, start - at + lead, end - at + lead
        at += len(stripped) + len(TEXT_JOINER)
    return None


def ticket_text(ticket: TicketFields) -> str:
    return join_text((ticket.subject, ticket.description))


def as_utc(value: datetime | None) -> datetime | None:
    """Aware UTC; a time without a zone is read as UTC (the API's rule for ticket times)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def tickets_frame(tickets: Sequence[TicketFields]) -> pd.DataFrame:
    """The ticket frame the feature pipeline was trained on (before its whitespace normalisation)."""
    created = [as_utc(t.created_at) for t in tickets]
    return pd.DataFrame(
        {
            TEXT: [ticket_text(t) for t in tickets],
            CREATED_AT: pd.to_datetime(pd.Series(created, dtype=object), utc=True),
            CHANNEL: [t.channel for t in tickets],
            TIER: [t.customer_tier for t in tickets],
            URGENCY: [t.urgency for t in tickets],
        }
    )


def model_inputs(tickets: Sequence[TicketFields]) -> list[dict[str, Any]]:
    """Exactly the inputs that move each ticket's prediction, in canonical form: the key's fields.

    The text is normalised by the pipeline's own function, not a copy of it. ``ticket_id``, ``language``
    and ``metadata`` are never read by the model and stay out.
    """
    if not tickets:
        return []
    texts = normalize_whitespace(pd.DataFrame({TEXT: [ticket_text(t) for t in tickets]}))[TEXT]
    out = []
    for ticket, text in zip(tickets, texts, strict=True):
        created = as_utc(ticket.created_at)
        out.append(
            {
                "text": text,
                "created_minute": None if created is None else created.strftime("%Y-%m-%dT%H:%M"),
                "channel": ticket.channel,
                "customer_tier": ticket.customer_tier,
                "urgency": ticket.urgency,
            }
        )
    return out


def input_digest(fields: Mapping[str, object]) -> str:
    """SHA-256 of the fields' canonical JSON (sorted keys, no spaces): equal inputs, equal digests."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def review_key(model_version: str, fields: Mapping[str, object]) -> str:
    """The open review item a repeated ticket reuses: one per model input and model version.

    The version is part of it because an item records one model's answer (its category, confidence and
    top labels, and the agreement gauge compares the reviewer with that answer): a new model's answer to
    the same ticket is another answer, as it is another cache entry.
    """
    return hashlib.sha256(f"{model_version}\0{input_digest(fields)}".encode()).hexdigest()


def ticket_review_key(source: str, ticket_id: str) -> str:
    """The open review item of a ticket the helpdesk names by id: one per ticket, whatever its version or
    the model's, so an edited ticket updates its waiting item instead of queueing a second one."""
    return hashlib.sha256(f"ticket\0{source}\0{ticket_id}".encode()).hexdigest()


def answer_key(model_version: str, fields: Mapping[str, object]) -> str:
    """The ticket ledger's version of a ticket: what the model reads, and which model reads it.

    With the model in it, a ticket sent again after a new model went live is answered by that model (a
    re-score, not a retry); a retry within one model's time gets the first answer. The review item is
    keyed by the ticket alone (:func:`ticket_review_key`), so a re-score updates it, never doubles it.
    """
    return review_key(model_version, fields)
