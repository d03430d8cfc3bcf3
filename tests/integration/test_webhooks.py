"""Helpdesk webhooks end to end: each system's documented payload, signed its own way, on the real model.

Every ticket is routed to review here (threshold 1.0), so each call shows what the queue holds: a retried
delivery must give the same ``prediction_id`` and leave one item; an edited ticket updates that item.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.conftest import PREDICT, REVIEW
from tests.integration.notify_support import Receiver

from ticket_triage.integrations import ADAPTERS
from ticket_triage.notify.signing import verify

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
SECRETS = {system: f"{system}-signing-secret-0001" for system in ADAPTERS}
SYSTEMS = sorted(ADAPTERS)


def signed(system: str, body: bytes, secret: str, *, at: datetime | None = None) -> dict[str, str]:
    """Headers as that system sends them (computed here the way its documentation describes)."""
    if system == "zendesk":
        stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
        return {
            "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        }
    if system == "freshdesk":
        return {"Authorization": f"Bearer {secret}"}
    if system == "jira":
        return {"X-Hub-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    if system == "zammad":
        return {"X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}
    raise AssertionError(system)


def payload(system: str, event: str) -> bytes:
    return (FIXTURES / f"{system}_{event}.json").read_bytes()


def deliver(client: TestClient, system: str, body: bytes, headers: dict[str, str]) -> dict:
    response = client.post(
        f"/integrations/{system}", content=body, headers={"Content-Type": "application/json", **headers}
    )
    return {"status": response.status_code, "json": response.json()}


@pytest.fixture
def hooked(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(
        routing_threshold=1.0,
        routing_rule="threshold",
        **{f"{system}_webhook_secret": secret for system, secret in SECRETS.items()},
    )


def _queue(client: TestClient) -> list[dict]:
    response = client.get("/reviews", params={"limit": 100}, headers=REVIEW)
    assert response.status_code == 200
    return response.json()["items"]


@pytest.mark.parametrize("system", SYSTEMS)
def test_signed_deliveries_are_answered_once_per_ticket_version(
    hooked: TestClient, system: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = SECRETS[system]
    created, updated = payload(system, "created"), payload(system, "updated")
    ticket = ADAPTERS[system].parse(json.loads(created))
    assert ticket.event == "created" and ADAPTERS[system].parse(json.loads(updated)).event == "updated"

    first = deliver(hooked, system, created, signed(system, created, secret))
    assert first["status"] == 200, first
    answer = first["json"]
    assert str(answer["ticket_id"]) == ticket.ticket_id
    assert answer["route"] == "review" and answer["review_id"] is not None
    assert answer["category"] == answer["probabilities"][0]["label"]

    retry = deliver(hooked, system, created, signed(system, created, secret))
    assert retry["status"] == 200
    assert retry["json"]["prediction_id"] == answer["prediction_id"]
    assert retry["json"]["review_id"] == answer["review_id"]
    items = [i for i in _queue(hooked) if i["ticket_id"] == ticket.ticket_id]
    assert len(items) == 1

    edit = deliver(hooked, system, updated, signed(system, updated, secret))
    assert edit["status"] == 200
    assert edit["json"]["prediction_id"] != answer["prediction_id"]
    assert edit["json"]["review_id"] == answer["review_id"]  # the waiting item was updated, not doubled
    items = [i for i in _queue(hooked) if i["ticket_id"] == ticket.ticket_id]
    assert len(items) == 1
    new_text = ADAPTERS[system].parse(json.loads(updated)).fields
    assert items[0]["subject"] == new_text.get("subject")

    caplog.set_level(logging.WARNING, logger="ticket_triage")
    unsigned = deliver(hooked, system, created, {})
    wrong = deliver(hooked, system, created, signed(system, created, "not-the-secret-000"))
    for refused in (unsigned, wrong):
        assert refused["status"] == 401, refused
        assert refused["json"]["error"]["code"] == "bad_signature"
        assert system in refused["json"]["error"]["message"]
    logged = caplog.text
    assert f"refused {system} webhook" in logged
    subject = str(ticket.fields.get("subject") or "")
    assert subject and subject not in logged and secret not in logged


def test_a_zendesk_delivery_outside_the_replay_window_is_refused(hooked: TestClient) -> None:
    body = payload("zendesk", "created")
    stale = signed("zendesk", body, SECRETS["zendesk"], at=datetime.now(UTC) - timedelta(hours=1))
    refused = deliver(hooked, "zendesk", body, stale)
    assert refused["status"] == 401 and refused["json"]["error"]["code"] == "bad_signature"


def test_a_system_without_a_secret_refuses_every_call(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    body = payload("jira", "created")
    refused = deliver(client, "jira", body, signed("jira", body, "anything-at-all-0001"))
    assert refused["status"] == 401
    assert "TRIAGE_JIRA_WEBHOOK_SECRET" in refused["json"]["error"]["message"]


def test_a_signed_payload_that_is_not_a_ticket_is_named(hooked: TestClient) -> None:
    for body, field in ((b'{"ticket": {"title": "x"}}', "ticket"), (b"not json", "body")):
        answer = deliver(hooked, "zammad", body, signed("zammad", body, SECRETS["zammad"]))
        assert answer["status"] == 422, answer
        assert answer["json"]["error"]["fields"][0]["field"].startswith(field)
    unknown = hooked.post("/integrations/helpscout", content=b"{}")
    assert unknown.status_code == 422  # not a system this service knows


def test_predict_with_a_ticket_id_is_idempotent_too(hooked: TestClient) -> None:
    ticket = {"ticket_id": "T-ledger-1", "subject": "VPN drops every hour", "description": "Since Monday."}
    first = hooked.post("/predict", json=ticket, headers=PREDICT).json()
    again = hooked.post("/predict", json=ticket, headers=PREDICT).json()
    assert again["prediction_id"] == first["prediction_id"] and again["review_id"] == first["review_id"]
    edited = hooked.post(
        "/predict", json={**ticket, "description": "Since Monday, on every laptop."}, headers=PREDICT
    )
    assert edited.json()["review_id"] == first["review_id"]
    assert edited.json()["prediction_id"] != first["prediction_id"]
    same_text_other_ticket = hooked.post(
        "/predict", json={**ticket, "ticket_id": "T-ledger-2"}, headers=PREDICT
    )
    assert same_text_other_ticket.json()["review_id"] != first["review_id"]
    items = [i for i in _queue(hooked) if str(i["ticket_id"]).startswith("T-ledger-")]
    assert sorted(i["ticket_id"] for i in items) == ["T-ledger-1", "T-ledger-2"]
    assert [i["description"] for i in items if i["ticket_id"] == "T-ledger-1"] == [
        "Since Monday, on every laptop."
    ]


def test_each_decision_reaches_the_notify_url_once_in_order(make_client: Callable[..., TestClient]) -> None:
    """Webhook in, decision out: a retry sends nothing new, an edit sends the ticket's next decision."""
    with Receiver() as receiver:
        client = make_client(
            routing_threshold=1.0,
            routing_rule="threshold",
            notify_url=receiver.url,
            notify_secret="notify-secret-0001",
            notify_backoff_seconds=0.1,
            zammad_webhook_secret=SECRETS["zammad"],
        )
        created, updated = payload("zammad", "created"), payload("zammad", "updated")
        first = deliver(client, "zammad", created, signed("zammad", created, SECRETS["zammad"]))["json"]
        deliver(client, "zammad", created, signed("zammad", created, SECRETS["zammad"]))  # a retry
        edit = deliver(client, "zammad", updated, signed("zammad", updated, SECRETS["zammad"]))["json"]
        deadline = time.monotonic() + 30
        while len(receiver.accepted()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # room for a wrong third delivery to show up
        got = receiver.accepted()
    assert [r.delivery for r in got] == [first["prediction_id"], edit["prediction_id"]]
    for received, answer in zip(got, (first, edit), strict=True):
        assert received.payload["source"] == "zammad" and received.event == "prediction"
        assert received.payload["prediction"]["review_id"] == answer["review_id"] == first["review_id"]
        assert received.payload["prediction"]["category"] == answer["category"]
        assert verify("notify-secret-0001", received.signature or "", received.body, now=time.time())


def test_a_replayed_answer_whose_process_died_gets_its_item_and_audit_record(
    hooked: TestClient, make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    """The state a consumer killed right after the ledger write leaves (answer kept, nothing else yet) is
    built here with the ledger itself: a SIGKILL cannot be aimed at that gap reliably. The redelivery must
    bring the review item and the audit record in, once."""
    from sqlalchemy import text

    from ticket_triage.data.canonical import answer_key, model_inputs
    from ticket_triage.review import make_engine
    from ticket_triage.serving.schemas import Ticket
    from ticket_triage.serving.ticket_ledger import TicketLedger, TicketVersion

    ticket = {"ticket_id": "T-crash-1", "subject": "Printer offline", "description": "Since the update."}
    made = hooked.post("/predict", json={**ticket, "ticket_id": "T-crash-0"}, headers=PREDICT).json()
    version = TicketVersion(
        "api", "T-crash-1", answer_key(made["model_version"], model_inputs([Ticket(**ticket)])[0])
    )
    lost = {**made, "ticket_id": "T-crash-1", "prediction_id": "lost-answer-0001", "review_id": None}
    engine = make_engine(f"sqlite+pysqlite:///{tmp_path / 'review.sqlite3'}")
    try:
        TicketLedger(engine).claim([(version, lost)], datetime.now(UTC))
        for _ in range(2):  # the redelivery, then a retry of it
            again = hooked.post("/predict", json=ticket, headers=PREDICT).json()
            assert again["prediction_id"] == "lost-answer-0001"
        items = [i for i in _queue(hooked) if i["ticket_id"] == "T-crash-1"]
        assert len(items) == 1 and items[0]["predicted_category"] == made["category"]
        deadline = time.monotonic() + 10
        audited = 0
        while time.monotonic() < deadline and audited == 0:
            time.sleep(0.2)
            with engine.connect() as conn:
                audited = conn.execute(
                    text("SELECT count(*) FROM prediction_audit WHERE prediction_id = 'lost-answer-0001'")
                ).scalar_one()
        assert audited == 1
    finally:
        engine.dispose()
