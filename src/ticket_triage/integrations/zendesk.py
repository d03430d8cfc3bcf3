"""Zendesk webhooks: signed deliveries, in either of the two bodies a Zendesk webhook can send.

Authentication (developer.zendesk.com/documentation/webhooks/verifying/): every request carries
``X-Zendesk-Webhook-Signature``, ``base64(HMAC-SHA256(signing secret, timestamp + raw body))``, and
``X-Zendesk-Webhook-Signature-Timestamp``, ISO 8601 like ``2021-03-25T05:09:27Z``. A delivery signed more
than :data:`REPLAY_SECONDS` before (or after) now is refused, so a captured request cannot be replayed.

1. A webhook subscribed to ticket events (developer.zendesk.com/api-reference/webhooks/event-types/
   ticket-events/) sends Zendesk's fixed event body; ids there are strings and enums upper case::

       {"type": "zen:event-type:ticket.created", "id": "<event id>", "time": "...",
        "subject": "zen:ticket:5158", "account_id": 22129848, "zendesk_event_version": "2022-11-06",
        "detail": {"id": "5158", "subject": "...", "description": "...", "status": "OPEN",
                   "priority": "LOW", "type": "TASK", "via": {"channel": "web_service"},
                   "created_at": "...", "updated_at": "...", "requester_id": "...", "group_id": "...",
                   "brand_id": "...", "organization_id": "...", "form_id": "...", "tags": [...], ...},
        "event": {...}}

   ``ticket.created`` is a new ticket; every other ``ticket.*`` event an update (the detail carries the
   whole ticket), except deletion, spam and merge, after which there is nothing to classify.

2. A webhook connected to a trigger sends the JSON the admin writes with placeholders
   (support.zendesk.com/hc/en-us/articles/4408886858138, "Zendesk placeholders reference"). The body to
   use, in two triggers ("Ticket is Created" with ``"event": "created"``, "Ticket is Updated" with
   ``"updated"``)::

       {"ticket": {"id": "{{ticket.id}}", "subject": "{{ticket.title}}",
                   "description": "{{ticket.description}}",
                   "created_at": "{{ticket.created_at_with_timestamp}}",
                   "updated_at": "{{ticket.updated_at_with_timestamp}}",
                   "channel": "{{ticket.via}}", "priority": "{{ticket.priority}}",
                   "status": "{{ticket.status}}", "group": "{{ticket.group.name}}",
                   "requester_id": "{{ticket.requester.id}}", "event": "created"}}

   Without ``event``, equal created and updated times mean created (those placeholders have minute
   precision, hence the explicit field).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime

from ticket_triage.integrations.base import (
    Event,
    InboundTicket,
    PayloadError,
    SignatureError,
    as_object,
    channel,
    child,
    event_by_times,
    event_word,
    header,
    iso,
    lower_text,
    require_text,
    same,
    string,
    text,
    ticket_fields,
    ticket_id,
    timestamp,
    urgency,
)

SYSTEM = "zendesk"
SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
#: Largest accepted distance, in seconds, between the signature's timestamp and now.
REPLAY_SECONDS = 300.0

_TICKET_EVENT = "zen:event-type:ticket."
_CREATED = _TICKET_EVENT + "created"
#: Ticket events after which the ticket is no longer one to route.
_GONE = frozenset({"soft_deleted", "permanently_deleted", "marked_as_spam", "merged"})


class ZendeskAdapter:
    """Zendesk deliveries; ``replay_seconds`` bounds how old (or early) a signature may be."""

    system = SYSTEM

    def __init__(self, replay_seconds: float = REPLAY_SECONDS) -> None:
        self.replay_seconds = replay_seconds

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
        signature = header(headers, SIGNATURE_HEADER)
        stamp = header(headers, TIMESTAMP_HEADER)
        if not signature or not stamp:
            raise SignatureError(f"the request lacks the {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
        digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
        if not same(base64.b64encode(digest).decode(), signature.strip()):
            raise SignatureError(f"the {SIGNATURE_HEADER} does not match the body and the signing secret")
        try:
            signed_at = datetime.fromisoformat(stamp.strip())
        except ValueError:
            raise SignatureError(f"the {TIMESTAMP_HEADER} is not an ISO 8601 time") from None
        if signed_at.tzinfo is None:
            signed_at = signed_at.replace(tzinfo=UTC)
        drift = now - signed_at.timestamp()
        if abs(drift) > self.replay_seconds:
            raise SignatureError(
                f"the signature is {abs(drift):.0f} s {'old' if drift > 0 else 'in the future'}, outside the"
                f" {self.replay_seconds:.0f} s replay window"
            )

    def parse(self, payload: object) -> InboundTicket:
        root = as_object(payload, "body")
        if "detail" in root or "type" in root:
            return _event_body(root)
        if "ticket" in root:
            return _trigger_body(root)
        raise PayloadError(
            "ticket", "expected a Zendesk ticket event (type, detail) or a trigger body with a ticket object"
        )


def _event_body(root: Mapping[str, object]) -> InboundTicket:
    kind = root.get("type")
    if not isinstance(kind, str) or not kind.startswith(_TICKET_EVENT):
        raise PayloadError("type", "type is not a Zendesk ticket event (zen:event-type:ticket.*)")
    if kind.removeprefix(_TICKET_EVENT) in _GONE:
        raise PayloadError(
            "type", "type is a deletion, spam or merge event: no ticket to classify; leave it unsubscribed"
        )
    detail = child(root, "detail", "")
    number = ticket_id(detail.get("id"), "detail.id")
    subject = string(detail.get("subject"), "detail.subject")
    description = string(detail.get("description"), "detail.description")
    require_text(subject, description, "detail.subject", "detail.description")
    created = timestamp(detail.get("created_at"), "detail.created_at")
    updated = timestamp(detail.get("updated_at"), "detail.updated_at")
    via = detail.get("via")
    source = via.get("channel") if isinstance(via, dict) else None
    priority = text(detail.get("priority"))
    tags = detail.get("tags")
    event: Event = "created" if kind == _CREATED else "updated"
    metadata = {
        "zendesk_event": kind.removeprefix(_TICKET_EVENT),
        "status": lower_text(detail.get("status")),
        "priority": lower_text(priority),
        "type": lower_text(detail.get("type")),
        "via": text(source),
        "group_id": text(detail.get("group_id")),
        "requester_id": text(detail.get("requester_id")),
        "organization_id": text(detail.get("organization_id")),
        "brand_id": text(detail.get("brand_id")),
        "form_id": text(detail.get("form_id")),
        "tags": " ".join(str(t) for t in tags) if isinstance(tags, list) else None,
    }
    fields = ticket_fields(
        ticket_id=number,
        subject=subject,
        description=description,
        created_at=iso(created),
        channel=channel(source),
        urgency=urgency(priority),
        metadata=metadata,
    )
    return InboundTicket(SYSTEM, number, event, fields, iso(updated))


def _trigger_body(root: Mapping[str, object]) -> InboundTicket:
    ticket = child(root, "ticket", "")
    number = ticket_id(ticket.get("id"), "ticket.id")
    subject_key = "subject" if "subject" in ticket else "title"
    subject = string(ticket.get(subject_key), f"ticket.{subject_key}")
    description = string(ticket.get("description"), "ticket.description")
    require_text(subject, description, f"ticket.{subject_key}", "ticket.description")
    created = timestamp(ticket.get("created_at"), "ticket.created_at")
    updated = timestamp(ticket.get("updated_at"), "ticket.updated_at")
    via = ticket.get("channel", ticket.get("via"))
    if isinstance(via, dict):
        via = via.get("channel")
    event = (
        event_word(ticket.get("event"), "ticket.event")
        or event_word(root.get("event"), "event")
        or event_by_times(created, updated)
        or "created"
    )
    priority = text(ticket.get("priority"))
    metadata = {
        "status": lower_text(ticket.get("status")),
        "priority": lower_text(priority),
        "via": text(via),
        "group": text(ticket.get("group")),
        "requester_id": text(ticket.get("requester_id")),
    }
    fields = ticket_fields(
        ticket_id=number,
        subject=subject,
        description=description,
        created_at=iso(created),
        channel=channel(via),
        urgency=urgency(priority),
        metadata=metadata,
    )
    return InboundTicket(SYSTEM, number, event, fields, iso(updated))


ADAPTER = ZendeskAdapter()
