"""Helpdesk webhook adapters: each system's documented payload read as a Ticket, and each system's own
authentication checked. Signatures are computed here from the documentation's recipe, not by the code
under test."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ticket_triage.integrations import ADAPTERS
from ticket_triage.integrations.base import (
    InboundTicket,
    PayloadError,
    SignatureError,
    channel,
    html_to_text,
)
from ticket_triage.integrations.jira import adf_text
from ticket_triage.integrations.zendesk import ZendeskAdapter
from ticket_triage.serving.schemas import Ticket

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
SECRET = "s3cr3t-signing-token-0001"
NOW = datetime(2026, 3, 3, 9, 15, 5, tzinfo=UTC).timestamp()
STAMP = "2026-03-03T09:15:02Z"


def fixture(system: str, event: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{system}_{event}.json").read_text(encoding="utf-8"))
    return loaded


def body_of(system: str, event: str) -> bytes:
    return (FIXTURES / f"{system}_{event}.json").read_bytes()


def zendesk_headers(body: bytes, secret: str = SECRET, stamp: str = STAMP) -> dict[str, str]:
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }


def hub(body: bytes, secret: str, algorithm: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()
    return {"X-Hub-Signature": f"{algorithm}={digest}"}


def signed(system: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    if system == "zendesk":
        return zendesk_headers(body, secret)
    if system == "freshdesk":
        return {"Authorization": f"Bearer {secret}"}
    if system == "jira":
        return hub(body, secret, "sha256")
    return hub(body, secret, "sha1")


def parse(system: str, payload: object) -> InboundTicket:
    return ADAPTERS[system].parse(payload)


def refused(system: str, headers: dict[str, str], body: bytes, now: float = NOW) -> str:
    with pytest.raises(SignatureError) as caught:
        ADAPTERS[system].verify(headers, body, SECRET, now)
    assert caught.value.status == 401
    assert SECRET not in caught.value.reason
    return caught.value.reason


def payload_error(system: str, payload: object) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        parse(system, payload)
    assert caught.value.status == 422
    return caught.value


# --- parsing the documented payloads -------------------------------------------------------------------

EXPECTED = {
    ("zendesk", "created"): {
        "ticket_id": "35436",
        "event": "created",
        "subject": "Invoice PDFs download as blank pages",
        "description_starts": "Since this morning every invoice PDF",
        "channel": "email",
        "urgency": "high",
        "created_at": "2026-03-03T09:15:02+00:00",
        "updated_at": "2026-03-03T09:15:02+00:00",
    },
    ("zendesk", "updated"): {
        "ticket_id": "35436",
        "event": "updated",
        "subject": "Invoice PDFs download as blank pages (March invoices, all browsers)",
        "description_starts": "Since this morning every invoice PDF",
        "channel": "email",
        "urgency": "urgent",
        "created_at": "2026-03-03T09:15:00+00:00",
        "updated_at": "2026-03-03T10:42:00+00:00",
    },
    ("freshdesk", "created"): {
        "ticket_id": "4821",
        "event": "created",
        "subject": "Password reset link says expired",
        "description_starts": 'Hi team,\n\nthe reset link in your email says "expired" the moment',
        "channel": "web",
        "urgency": "medium",
        "created_at": "2026-03-04T08:01:12+00:00",
        "updated_at": "2026-03-04T08:01:12+00:00",
    },
    ("freshdesk", "updated"): {
        "ticket_id": "4821",
        "event": "updated",
        "subject": "Password reset link says expired - locked out before payroll",
        "description_starts": 'Hi team,\n\nthe reset link in your email says "expired" the moment',
        "channel": "web",
        "urgency": "urgent",
        "created_at": "2026-03-04T08:01:12+00:00",
        "updated_at": "2026-03-04T09:30:45+00:00",
    },
    ("jira", "created"): {
        "ticket_id": "SD-12",
        "event": "created",
        "subject": "VPN disconnects every hour",
        "description_starts": "Since Monday the VPN client drops the connection every hour and asks",
        "channel": None,
        "urgency": "high",
        "created_at": "2026-11-30T10:15:00+00:00",
        "updated_at": "2026-11-30T10:15:00+00:00",
    },
    ("jira", "updated"): {
        "ticket_id": "SD-12",
        "event": "updated",
        "subject": "VPN disconnects every hour for the whole Berlin office",
        "description_starts": "Since Monday the VPN client drops the connection *every hour*",
        "channel": None,
        "urgency": "highest",
        "created_at": "2026-11-30T10:15:00+00:00",
        "updated_at": "2026-11-30T11:02:31.448000+00:00",
    },
    ("zammad", "created"): {
        "ticket_id": "1234",
        "event": "created",
        "subject": "Printer on floor 2 shows offline",
        "description_starts": "Hello,\n\nthe printer on floor 2 shows offline since Monday; restarting",
        "channel": "email",
        "urgency": "normal",
        "created_at": "2026-03-03T09:15:00.282000+00:00",
        "updated_at": "2026-03-03T09:15:00.333000+00:00",
    },
    ("zammad", "updated"): {
        "ticket_id": "1234",
        "event": "updated",
        "subject": "Printer on floor 2 offline - whole department cannot print",
        "description_starts": "Now nobody on floor 2 can print; the queue shows 40 waiting jobs.\nPlease",
        "channel": "email",
        "urgency": "high",
        "created_at": "2026-03-03T09:15:00.282000+00:00",
        "updated_at": "2026-03-03T11:48:19.904000+00:00",
    },
}


@pytest.mark.parametrize(("system", "event"), sorted(EXPECTED))
def test_each_fixture_reads_as_its_ticket(system: str, event: str) -> None:
    want = EXPECTED[(system, event)]
    ticket = parse(system, fixture(system, event))
    assert ticket.system == system
    assert ticket.ticket_id == want["ticket_id"] and ticket.fields["ticket_id"] == want["ticket_id"]
    assert ticket.event == want["event"]
    assert ticket.fields["subject"] == want["subject"]
    description = ticket.fields["description"]
    assert isinstance(description, str) and description.startswith(str(want["description_starts"]))
    assert "<" not in description and "&amp;" not in description and "&quot;" not in description
    assert ticket.fields.get("channel") == want["channel"]
    assert ticket.fields.get("urgency") == want["urgency"]
    assert ticket.fields.get("created_at") == want["created_at"]
    assert ticket.updated_at == want["updated_at"]
    # The fields are what /predict takes: the route validates them the same way.
    validated = Ticket.model_validate(ticket.fields)
    assert validated.ticket_id == want["ticket_id"]
    assert set(ticket.fields) <= set(Ticket.model_fields)


def test_metadata_carries_the_helpdesks_own_references() -> None:
    zendesk = parse("zendesk", fixture("zendesk", "created")).fields["metadata"]
    assert zendesk == {
        "zendesk_event": "created",
        "status": "new",
        "priority": "high",
        "type": "incident",
        "via": "mail",
        "group_id": "8447320466430",
        "requester_id": "8447388090494",
        "organization_id": "8447346622462",
        "brand_id": "8447346621310",
        "form_id": "8646151517822",
        "tags": "billing invoice_pdf",
    }
    zammad = parse("zammad", fixture("zammad", "updated")).fields["metadata"]
    assert isinstance(zammad, dict)
    assert (zammad["number"], zammad["group"], zammad["state"], zammad["priority"]) == (
        "31001",
        "Service Desk",
        "open",
        "3 high",
    )
    jira = parse("jira", fixture("jira", "created")).fields["metadata"]
    assert isinstance(jira, dict)
    assert (jira["issue_id"], jira["project"], jira["status"]) == ("10002", "SD", "Waiting for support")
    for system in ADAPTERS:
        for event in ("created", "updated"):
            metadata = parse(system, fixture(system, event)).fields["metadata"]
            assert isinstance(metadata, dict)
            assert all(isinstance(v, str | int | float | bool) for v in metadata.values()), system


def test_zendesk_ticket_events_other_than_created_are_updates() -> None:
    payload = fixture("zendesk", "created")
    payload["type"] = "zen:event-type:ticket.priority_changed"
    payload["event"] = {"current": "URGENT", "previous": "HIGH"}
    ticket = parse("zendesk", payload)
    assert ticket.event == "updated" and ticket.ticket_id == "35436"


def test_zendesk_trigger_body_without_event_is_told_by_its_times() -> None:
    ticket = fixture("zendesk", "updated")["ticket"]
    del ticket["event"]
    assert parse("zendesk", {"ticket": ticket}).event == "updated"
    ticket["updated_at"] = ticket["created_at"]
    assert parse("zendesk", {"ticket": ticket}).event == "created"
    ticket["id"] = 35437  # the placeholder may render as a number in a hand-written body
    assert parse("zendesk", {"ticket": ticket}).ticket_id == "35437"


def test_freshdesk_accepts_the_apis_numeric_codes_and_plain_text() -> None:
    body = {
        "ticket": {
            "id": 77,
            "subject": "Refund",
            "description": "Line one\nLine two",
            "source": 1,
            "priority": 4,
        }
    }
    ticket = parse("freshdesk", body)
    assert ticket.ticket_id == "77" and ticket.event == "created"
    assert ticket.fields["channel"] == "email" and ticket.fields["urgency"] == "urgent"
    assert ticket.fields["description"] == "Line one\nLine two"  # not HTML: newlines kept


def test_freshdesk_event_field_and_legacy_triggered_event() -> None:
    legacy = fixture("freshdesk", "updated")
    legacy["freshdesk_webhook"]["triggered_event"] = "{ticket_action:created}"
    assert parse("freshdesk", legacy).event == "created"
    body = fixture("freshdesk", "created")
    body["triage_event"] = "updated"
    assert parse("freshdesk", body).event == "updated"
    del body["triage_event"]
    body["ticket"]["updated_at"] = "2026-03-04T08:30:00Z"
    assert parse("freshdesk", body).event == "updated"


def test_freshdesk_keeps_a_date_in_another_format_as_metadata() -> None:
    body = fixture("freshdesk", "created")
    body["ticket"]["created_at"] = "Wed, 4 Mar, 2026 at 8:01 AM"
    ticket = parse("freshdesk", body)
    assert "created_at" not in ticket.fields
    metadata = ticket.fields["metadata"]
    assert isinstance(metadata, dict) and metadata["created_at"] == "Wed, 4 Mar, 2026 at 8:01 AM"


def test_jira_event_without_webhook_event_and_the_rest_shape() -> None:
    payload = fixture("jira", "updated")
    del payload["webhookEvent"]
    assert parse("jira", payload).event == "updated"
    issue = payload["issue"]
    issue["fields"]["updated"] = issue["fields"]["created"]
    rest = parse("jira", issue)  # Automation's "Issue data (Jira format)": the issue itself
    assert rest.ticket_id == "SD-12" and rest.event == "created"


def test_zammad_first_article_is_a_creation_and_an_update_without_article_keeps_the_title() -> None:
    created = fixture("zammad", "created")
    assert created["ticket"]["created_at"] != created["ticket"]["updated_at"]
    assert parse("zammad", created).event == "created"  # the article is the ticket's first
    update = fixture("zammad", "updated")
    del update["article"]
    ticket = parse("zammad", update)
    assert ticket.event == "updated"
    assert ticket.fields["subject"] == "Printer on floor 2 offline - whole department cannot print"
    assert "description" not in ticket.fields
    update["ticket"]["priority"] = "1 low"  # a customised payload may send the name alone
    assert parse("zammad", update).fields["urgency"] == "low"


def test_long_texts_are_kept_whole() -> None:
    payload = fixture("zendesk", "created")
    payload["detail"]["description"] = "word " * 20_000
    assert parse("zendesk", payload).fields["description"] == "word " * 20_000


# --- authentication ------------------------------------------------------------------------------------


@pytest.mark.parametrize("system", sorted(ADAPTERS))
def test_each_system_accepts_its_own_signature_and_refuses_others(system: str) -> None:
    body = body_of(system, "created")
    ADAPTERS[system].verify(signed(system, body), body, SECRET, NOW)
    lower = {k.lower(): v for k, v in signed(system, body).items()}
    ADAPTERS[system].verify(lower, body, SECRET, NOW)  # header names in any case

    refused(system, {}, body)
    refused(system, signed(system, body, "not-the-secret"), body)
    if system != "freshdesk":  # a token does not cover the body; a signature does
        refused(system, signed(system, body), body + b" ")


def test_zendesk_refuses_a_timestamp_outside_the_replay_window() -> None:
    body = body_of("zendesk", "created")
    headers = zendesk_headers(body)
    ADAPTERS["zendesk"].verify(headers, body, SECRET, NOW + 290)
    assert "replay window" in refused("zendesk", headers, body, NOW + 3 + 301)
    assert "replay window" in refused("zendesk", headers, body, NOW - 3 - 301)  # from the future
    strict = ZendeskAdapter(replay_seconds=2)
    with pytest.raises(SignatureError):
        strict.verify(headers, body, SECRET, NOW)
    # Re-signing an old body with a fresh timestamp needs the secret: an old signature fails.
    moved = {**headers, "X-Zendesk-Webhook-Signature-Timestamp": "2026-03-03T09:20:00Z"}
    assert "does not match" in refused("zendesk", moved, body, NOW + 300)
    unparseable = zendesk_headers(body, stamp="yesterday")
    assert "ISO 8601" in refused("zendesk", unparseable, body)
    no_stamp = {"X-Zendesk-Webhook-Signature": headers["X-Zendesk-Webhook-Signature"]}
    assert "header" in refused("zendesk", no_stamp, body)


def test_freshdesk_token_in_either_header() -> None:
    body = body_of("freshdesk", "created")
    freshdesk = ADAPTERS["freshdesk"]
    freshdesk.verify({"X-Triage-Token": SECRET}, body, SECRET, NOW)
    freshdesk.verify({"authorization": f"bearer {SECRET}"}, body, SECRET, NOW)
    assert "no token" in refused("freshdesk", {"Authorization": f"Basic {SECRET}"}, body)
    assert "does not match" in refused("freshdesk", {"X-Triage-Token": SECRET[:-1]}, body)
    assert "does not match" in refused("freshdesk", {"Authorization": "Bearer wrong"}, body)


def test_jira_bearer_token_or_signature_and_a_present_signature_decides() -> None:
    body = body_of("jira", "updated")
    jira = ADAPTERS["jira"]
    jira.verify({"Authorization": f"Bearer {SECRET}"}, body, SECRET, NOW)
    assert "does not match" in refused("jira", {"Authorization": "Bearer guess"}, body)
    wrong_signature = {**hub(body, "other", "sha256"), "Authorization": f"Bearer {SECRET}"}
    assert "X-Hub-Signature" in refused("jira", wrong_signature, body)
    assert "sha256=" in refused("jira", hub(body, SECRET, "sha1"), body)


def test_zammad_requires_the_sha1_signature() -> None:
    body = body_of("zammad", "updated")
    headers = {**hub(body, SECRET, "sha1"), "X-Zammad-Trigger": "triage", "X-Zammad-Delivery": "c2f1e0"}
    ADAPTERS["zammad"].verify(headers, body, SECRET, NOW)
    assert "HMAC SHA1" in refused("zammad", {"X-Zammad-Trigger": "triage"}, body)
    assert "sha1=" in refused("zammad", hub(body, SECRET, "sha256"), body)
    digest = headers["X-Hub-Signature"].removeprefix("sha1=")
    assert "does not match" in refused("zammad", {"X-Hub-Signature": "sha1=" + digest[::-1]}, body)


# --- malformed payloads --------------------------------------------------------------------------------


def _drop(payload: dict[str, Any], path: str) -> dict[str, Any]:
    copied = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node = copied
    for key in parents:
        node = node[key]
    del node[last]
    return copied


def _set(payload: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    copied = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node = copied
    for key in parents:
        node = node[key]
    node[last] = value
    return copied


@pytest.mark.parametrize(
    ("system", "event", "change", "field"),
    [
        ("zendesk", "created", ("drop", "detail.id"), "detail.id"),
        ("zendesk", "created", ("set", "detail", "35436"), "detail"),
        ("zendesk", "created", ("set", "type", "zen:event-type:user.created"), "type"),
        ("zendesk", "created", ("set", "type", "zen:event-type:ticket.soft_deleted"), "type"),
        ("zendesk", "created", ("set", "detail.created_at", "soon"), "detail.created_at"),
        ("zendesk", "created", ("set", "detail.subject", 42), "detail.subject"),
        ("zendesk", "updated", ("set", "ticket.event", "deleted"), "ticket.event"),
        ("zendesk", "updated", ("set", "ticket.id", True), "ticket.id"),
        ("freshdesk", "created", ("drop", "ticket.id"), "ticket.id"),
        ("freshdesk", "created", ("set", "triage_event", "closed"), "triage_event"),
        ("freshdesk", "updated", ("drop", "freshdesk_webhook.ticket_id"), "freshdesk_webhook.ticket_id"),
        ("jira", "created", ("drop", "issue.key"), "issue.key"),
        ("jira", "created", ("set", "issue.fields", []), "issue.fields"),
        ("jira", "created", ("set", "webhookEvent", "jira:issue_deleted"), "webhookEvent"),
        ("jira", "created", ("set", "issue.fields.created", "30/11/2026"), "issue.fields.created"),
        ("jira", "updated", ("drop", "issue"), "issue"),
        ("zammad", "created", ("drop", "ticket.id"), "ticket.id"),
        ("zammad", "created", ("set", "article", "hello"), "article"),
        ("zammad", "created", ("set", "ticket.updated_at", "later"), "ticket.updated_at"),
    ],
)
def test_a_malformed_payload_names_its_field(
    system: str, event: str, change: tuple[Any, ...], field: str
) -> None:
    payload = fixture(system, event)
    changed = _drop(payload, change[1]) if change[0] == "drop" else _set(payload, change[1], change[2])
    error = payload_error(system, changed)
    assert error.field == field
    assert field in error.reason
    subject = str(parse(system, payload).fields["subject"])
    assert subject not in error.reason  # the reason never repeats the ticket's text


NO_TEXT = [
    ("zendesk", {"ticket": {"id": "1", "subject": " ", "description": ""}}),
    ("freshdesk", {"ticket": {"id": "9", "description": "<div><br></div>"}}),
    (
        "jira",
        {"webhookEvent": "jira:issue_created", "issue": {"key": "SD-1", "fields": {"description": None}}},
    ),
    (
        "zammad",
        {"ticket": {"id": 5, "title": ""}, "article": {"body": "<p> </p>", "content_type": "text/html"}},
    ),
]
NO_TEXT_FIELDS = {
    "zendesk": "ticket.subject, ticket.description",
    "freshdesk": "ticket.subject, ticket.description",
    "jira": "issue.fields.summary, issue.fields.description",
    "zammad": "ticket.title, article.body",
}


@pytest.mark.parametrize(("system", "payload"), NO_TEXT)
def test_a_ticket_without_text_names_both_fields(system: str, payload: dict[str, Any]) -> None:
    field = NO_TEXT_FIELDS[system]
    error = payload_error(system, payload)
    assert error.field == field
    assert all(name in error.reason for name in field.split(", "))


def test_either_text_alone_is_enough() -> None:
    no_subject = _set(fixture("zendesk", "created"), "detail.subject", None)
    assert "subject" not in parse("zendesk", no_subject).fields
    no_article = _drop(fixture("zammad", "created"), "article")
    assert parse("zammad", no_article).fields["subject"] == "Printer on floor 2 shows offline"


@pytest.mark.parametrize("system", sorted(ADAPTERS))
@pytest.mark.parametrize("payload", [[], "ticket", 7, None, {}])
def test_a_payload_that_is_not_the_systems_object_is_refused(system: str, payload: object) -> None:
    error = payload_error(system, payload)
    assert error.field in {"body", "ticket", "issue"}


def test_zammad_ticket_without_id_names_the_ticket() -> None:
    assert payload_error("zammad", {"ticket": {"title": "x"}}).field == "ticket.id"


# --- helpers -------------------------------------------------------------------------------------------


def test_adapters_registry() -> None:
    assert sorted(ADAPTERS) == ["freshdesk", "jira", "zammad", "zendesk"]
    assert all(adapter.system == name for name, adapter in ADAPTERS.items())


def test_html_to_text_keeps_paragraphs_and_drops_markup() -> None:
    html = (
        "<html><head><title>t</title><style>p{color:red}</style></head><body>"
        "<p>First&nbsp;line<br>second   line</p><script>alert(1)</script>"
        "<ul><li>one</li><li>two &lt;3</li></ul><p>Caf&eacute; &#8364;5</p></body></html>"
    )
    assert html_to_text(html) == "First line\nsecond line\n\none\ntwo <3\n\nCafé €5"
    assert html_to_text("<div>unclosed <b>bold") == "unclosed bold"


def test_adf_text_flattens_nested_content() -> None:
    def text(value: str) -> dict[str, Any]:
        return {"type": "text", "text": value}

    def paragraph(*nodes: dict[str, Any]) -> dict[str, Any]:
        return {"type": "paragraph", "content": list(nodes)}

    def item(value: str) -> dict[str, Any]:
        return {"type": "listItem", "content": [paragraph(text(value))]}

    document = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [text("Steps")]},
            {"type": "orderedList", "content": [item("Open"), item("Click")]},
            paragraph(text("a"), {"type": "hardBreak"}, text("b")),
            {"type": "codeBlock", "content": [text("err 42")]},
            paragraph({"type": "inlineCard", "attrs": {"url": "https://x.example/1"}}),
        ],
    }
    assert adf_text(document, "d") == "Steps\n\nOpen\nClick\n\na\nb\n\nerr 42\n\nhttps://x.example/1"
    deep: dict[str, Any] = {"type": "text", "text": "x"}
    for _ in range(100):
        deep = {"type": "blockquote", "content": [deep]}
    with pytest.raises(PayloadError) as caught:
        adf_text(deep, "issue.fields.description")
    assert caught.value.field == "issue.fields.description"


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        ("web_service", "api"),
        ("Web Form", "web"),
        ("mail", "email"),
        ("Phone call (incoming)", "phone"),
        ("native_messaging", "chat"),
        ("Feedback Widget", "web"),
        ("telegram personal-message", "chat"),
        ("closed_ticket", "closed_ticket"),
        ("a very long channel name nobody maps", "other"),
        ("", None),
        (None, None),
    ],
)
def test_channel_is_a_short_word(raw: str | None, word: str | None) -> None:
    assert channel(raw) == word
