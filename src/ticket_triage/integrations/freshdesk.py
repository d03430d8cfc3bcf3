"""Freshdesk webhooks: the body an automation rule's "Trigger Webhook" action sends, with a shared token.

Freshdesk does not sign webhooks (support.freshdesk.com/support/solutions/articles/132589, "Using
Webhooks in automation rules"); the action can add custom headers, so the rule sends the secret as
``Authorization: Bearer <secret>`` or ``X-Triage-Token: <secret>``, compared in constant time. Use HTTPS:
the token is only as private as the connection.

The body is the JSON the admin composes with placeholders (Encoding: JSON, Advanced). The body to use, in
one rule on ticket creation (``"triage_event": "created"``) and one on updates (``"updated"``)::

    {"triage_event": "created",
     "ticket": {"id": "{{ticket.id}}", "subject": "{{ticket.subject}}",
                "description": "{{ticket.description}}", "priority": "{{ticket.priority}}",
                "source": "{{ticket.source}}", "status": "{{ticket.status}}",
                "type": "{{ticket.ticket_type}}", "group": "{{ticket.group.name}}",
                "url": "{{ticket.url}}"}}

``created_at``/``updated_at`` may be added with the date placeholders the account's "Insert placeholder"
list offers: ISO 8601 and RFC 2822 times are read; a time in another format is kept in ``metadata`` only.
``priority``, ``source`` and ``status`` may also be the API's numbers (priority 1-4 = low..urgent; source
1 email, 2 portal, 3 phone, 7 chat, 9 feedback widget, 10 outbound email).

The older Simple-mode body is read too, as Zulip's Freshdesk integration documents it::

    {"freshdesk_webhook": {"triggered_event": "{ticket_action:created}", "ticket_id": "11",
                           "ticket_subject": "...", "ticket_description": "<div>...</div>",
                           "ticket_status": "Pending", "ticket_priority": "High", "ticket_type": "...",
                           "ticket_source": "Email", "ticket_url": "...", ...}}

The event: ``triage_event`` (or ``event``) when present; else the legacy ``triggered_event``
(``{ticket_action:created}`` is a creation, any other change an update); else equal created and updated
times; else "created". The description arrives as HTML and is turned into text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ticket_triage.integrations.base import (
    Event,
    InboundTicket,
    PayloadError,
    SignatureError,
    as_object,
    bearer,
    channel,
    child,
    event_by_times,
    event_word,
    header,
    html_to_text,
    iso,
    looks_like_html,
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

SYSTEM = "freshdesk"
TOKEN_HEADER = "X-Triage-Token"

#: The API's numeric codes, for bodies that carry them instead of the placeholders' names.
PRIORITIES = {1: "low", 2: "medium", 3: "high", 4: "urgent"}
SOURCES = {1: "email", 2: "portal", 3: "phone", 7: "chat", 9: "feedback widget", 10: "outbound email"}
STATUSES = {2: "open", 3: "pending", 4: "resolved", 5: "closed"}

_LEGACY = "freshdesk_webhook"
_LEGACY_CREATED = "{ticket_action:created}"


class FreshdeskAdapter:
    system = SYSTEM

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
        tokens = [t for t in (bearer(headers), header(headers, TOKEN_HEADER)) if t]
        if not tokens:
            raise SignatureError(f"the request carries no token (Authorization: Bearer or {TOKEN_HEADER})")
        # Every candidate is compared, so the time taken does not tell which header was right.
        if not any([same(secret, token.strip()) for token in tokens]):
            raise SignatureError("the token does not match the configured secret")

    def parse(self, payload: object) -> InboundTicket:
        root = as_object(payload, "body")
        if _LEGACY in root:
            return _legacy_body(root)
        if "ticket" in root:
            return _ticket_body(root)
        raise PayloadError("ticket", "expected the rule's body with a ticket object (or freshdesk_webhook)")


def _ticket_body(root: Mapping[str, object]) -> InboundTicket:
    ticket = child(root, "ticket", "")
    event = (
        event_word(root.get("triage_event"), "triage_event")
        or event_word(root.get("event"), "event")
        or event_word(ticket.get("triage_event"), "ticket.triage_event")
        or event_word(ticket.get("event"), "ticket.event")
    )
    return _read(ticket, "ticket", "", event)


def _legacy_body(root: Mapping[str, object]) -> InboundTicket:
    ticket = child(root, _LEGACY, "")
    event = event_word(root.get("triage_event"), "triage_event") or event_word(
        ticket.get("triage_event"), f"{_LEGACY}.triage_event"
    )
    triggered = text(ticket.get("triggered_event"))
    if event is None and triggered is not None:
        event = "created" if triggered.replace(" ", "") == _LEGACY_CREATED else "updated"
    return _read(ticket, _LEGACY, "ticket_", event)


def _read(ticket: Mapping[str, object], path: str, prefix: str, event: Event | None) -> InboundTicket:
    """One body's ticket; the legacy body names the same fields with a ``ticket_`` prefix."""

    def at(name: str) -> str:
        return f"{path}.{prefix}{name}"

    def get(name: str) -> object:
        return ticket.get(prefix + name)

    number = ticket_id(get("id"), at("id"))
    subject = string(get("subject"), at("subject"))
    description = string(get("description"), at("description"))
    if description is not None and looks_like_html(description):
        description = html_to_text(description) or None
    require_text(subject, description, at("subject"), at("description"))
    created, created_raw = _time(get("created_at"), at("created_at"))
    updated, updated_raw = _time(get("updated_at"), at("updated_at"))
    source = _coded(get("source"), SOURCES)
    priority = _coded(get("priority"), PRIORITIES)
    metadata = {
        "status": _coded(get("status"), STATUSES),
        "priority": priority,
        "source": source,
        "type": text(get("type")),
        "group": text(get("group")) or text(get("group_name")),
        "url": text(get("url")),
        "created_at": created_raw if created is None else None,
        "updated_at": updated_raw if updated is None else None,
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
    version = iso(updated) or updated_raw
    decided = event or event_by_times(iso(created) or created_raw, version) or "created"
    return InboundTicket(SYSTEM, number, decided, fields, version)


def _time(value: object, path: str) -> tuple[datetime | None, str | None]:
    """A creation/update time and its text: placeholders render dates in the account's own format, so
    one that does not parse is kept as text instead of refusing the ticket."""
    raw = text(value)
    try:
        return timestamp(value, path), raw
    except PayloadError:
        return None, raw


def _coded(value: object, names: Mapping[int, str]) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(value, str(value))
    rendered = lower_text(value)
    if rendered is not None and rendered.isdigit():
        return names.get(int(rendered), rendered)
    return rendered


ADAPTER = FreshdeskAdapter()
