"""Zammad webhooks: a trigger's webhook with the default payload, signed with the HMAC SHA1 token.

Headers (admin-docs.zammad.org, Manage > Webhook > "Webhook Payload"): ``X-Zammad-Trigger`` (the
trigger's name), ``X-Zammad-Delivery`` (a random id) and, with an "HMAC SHA1 Signature Token" set on the
webhook, ``X-Hub-Signature: sha1=<hex HMAC-SHA1(token, raw body)>``. The signature is required: a webhook
without a token cannot be told from anyone else's request.

The default payload (same page), associations expanded into objects::

    {"ticket": {"id": 81, "number": "10081", "title": "...", "group": {"name": "Service Desk", ...},
                "group_id": 3, "priority": {"name": "2 normal", ...}, "state": "open",
                "customer": {...}, "customer_id": 8, "organization": {"name": ...},
                "create_article_type": "phone", "article_ids": [104], "article_count": 1,
                "created_at": "2020-11-13T14:34:35.282Z", "updated_at": "2020-11-13T14:34:35.333Z", ...},
     "article": {"id": 104, "subject": "...", "body": "...<div><br></div>...",
                 "content_type": "text/html", "type": "phone", "from": "...", "internal": false, ...}}

The ticket id is Zammad's ``id`` (what its API takes); the visible ``number`` goes to metadata. The
subject is the ticket's title, the description the article's body (an HTML body as text); an update
without an article carries the title only. Created when ``created_at`` equals ``updated_at`` or the
article is the ticket's first (Zammad stamps ``updated_at`` a few milliseconds after creating the first
article); else updated. The channel is the ticket's creation article type, else the article's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from ticket_triage.integrations.base import (
    Event,
    InboundTicket,
    SignatureError,
    as_object,
    channel,
    child,
    header,
    html_to_text,
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

SYSTEM = "zammad"
SIGNATURE_HEADER = "X-Hub-Signature"


class ZammadAdapter:
    system = SYSTEM

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
        signature = header(headers, SIGNATURE_HEADER)
        if not signature:
            raise SignatureError(
                f"the request lacks the {SIGNATURE_HEADER} header; give the webhook an HMAC SHA1 token"
            )
        method, _, given = signature.strip().partition("=")
        if method.lower() != "sha1" or not given:
            raise SignatureError(f"the {SIGNATURE_HEADER} is not of the form sha1=<hex digest>")
        expected = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        if not same(expected, given.lower()):
            raise SignatureError(f"the {SIGNATURE_HEADER} does not match the body and the signature token")

    def parse(self, payload: object) -> InboundTicket:
        root = as_object(payload, "body")
        ticket = child(root, "ticket", "")
        number = ticket_id(ticket.get("id"), "ticket.id")
        raw_article = root.get("article")
        article = {} if raw_article is None else as_object(raw_article, "article")
        title = string(ticket.get("title"), "ticket.title")
        body = string(article.get("body"), "article.body")
        if body is not None and (lower_text(article.get("content_type")) or "").startswith("text/html"):
            body = html_to_text(body) or None
        require_text(title, body, "ticket.title", "article.body")
        created = timestamp(ticket.get("created_at"), "ticket.created_at")
        updated = timestamp(ticket.get("updated_at"), "ticket.updated_at")
        source = text(ticket.get("create_article_type")) or text(article.get("type"))
        priority = text(ticket.get("priority"))
        metadata = {
            "number": text(ticket.get("number")),
            "group": text(ticket.get("group")),
            "group_id": text(ticket.get("group_id")),
            "state": text(ticket.get("state")),
            "priority": priority,
            "customer_id": text(ticket.get("customer_id")),
            "organization": text(ticket.get("organization")),
            "article_id": text(article.get("id")),
            "article_type": text(article.get("type")),
            "article_sender": text(article.get("sender")),
        }
        fields = ticket_fields(
            ticket_id=number,
            subject=title,
            description=body,
            created_at=iso(created),
            channel=channel(source),
            urgency=urgency(priority),
            metadata=metadata,
        )
        event = _event(ticket, article, created, updated)
        return InboundTicket(SYSTEM, number, event, fields, iso(updated))


def _event(
    ticket: Mapping[str, object], article: Mapping[str, object], created: object, updated: object
) -> Event:
    if created is not None and created == updated:
        return "created"
    first = _first_article(ticket.get("article_ids"))
    if first is not None and article.get("id") == first:
        return "created"
    if first is None and created is None and updated is None:
        return "created"  # nothing tells; as the other systems, a ticket first seen is taken as new
    return "updated"


def _first_article(ids: object) -> int | None:
    if not isinstance(ids, list):
        return None
    numbers = [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]
    return min(numbers) if numbers else None


ADAPTER = ZammadAdapter()
