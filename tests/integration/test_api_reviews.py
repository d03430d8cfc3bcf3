"""The review queue through the API: routed predictions are queued, reviewers claim, answer and export."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from tests.integration.conftest import ADMIN, KEY_SPEC, PREDICT, REVIEW

from ticket_triage.data.loader import load_tickets
from ticket_triage.data.schema import LABEL, ColumnMap

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
BOB_KEY = "bob-review-key-0001"
BOB = {"Authorization": f"Bearer {BOB_KEY}"}

TICKET = {
    "ticket_id": "HD-7",
    "subject": "Invoice charged twice",
    "description": "My card was charged twice for the March invoice. Please refund one of the payments.",
    "created_at": "2026-03-03T09:15:00Z",
    "channel": "email",
    "customer_tier": "gold",
    "urgency": "high",
    "metadata": {"crm": "X-1"},
}


def _ticket(n: int) -> dict[str, Any]:
    return {**TICKET, "ticket_id": f"HD-{n}", "subject": f"{TICKET['subject']} (order {n})"}


@pytest.fixture
def reviews_client(make_client: Callable[..., TestClient], tmp_path: Path) -> TestClient:
    """Every prediction routed to review (threshold above any confidence); alice and bob review."""
    return make_client(
        routing_threshold=0.999,
        routing_rule="threshold",  # the threshold alone decides, whichever rule the bundle chose
        database_file=tmp_path / "r.sqlite3",
        api_keys=KEY_SPEC + f",bob:review:{BOB_KEY}",
    )


def _labels(trained: Any, target: str) -> list[str]:
    return list(trained.targets[target].model.labels)


def _other_category(trained: Any, predicted: str) -> str:
    return next(label for label in _labels(trained, "category") if label != predicted)


def test_routed_prediction_is_queued_and_listed(reviews_client: TestClient, trained: Any) -> None:
    response = reviews_client.post("/predict?top_k=2", json=TICKET, headers=PREDICT)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["route"] == "review"
    assert isinstance(answer["review_id"], int)

    listed = reviews_client.get("/reviews", headers=REVIEW)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert (body["limit"], body["offset"]) == (50, 0)
    [item] = body["items"]
    assert item["id"] == answer["review_id"]
    assert item["status"] == "pending"
    assert item["ticket_id"] == "HD-7"
    assert item["subject"] == TICKET["subject"]
    assert item["description"] == TICKET["description"]
    assert item["channel"] == "email"
    assert item["customer_tier"] == "gold"
    assert item["urgency"] == "high"
    assert item["metadata"] == {"crm": "X-1"}
    assert item["created_at"].startswith("2026-03-03T09:15:00")
    assert item["predicted_category"] == answer["category"]
    assert item["confidence"] == answer["confidence"]
    assert item["predicted_priority"] == answer["priority"]
    assert item["model_version"] == answer["model_version"] == trained.path.name
    # The queue keeps the top 5 whatever top_k the caller asked for.
    assert len(item["top_labels"]) == 5
    assert item["top_labels"][:2] == answer["probabilities"]

    filtered = reviews_client.get(
        "/reviews", params={"status": "resolved", "category": answer["category"]}, headers=REVIEW
    )
    assert filtered.json()["items"] == []
    by_category = reviews_client.get("/reviews", params={"category": answer["category"]}, headers=REVIEW)
    assert [i["id"] for i in by_category.json()["items"]] == [answer["review_id"]]


def test_a_ticket_repeated_while_its_item_is_open_reuses_the_item(reviews_client: TestClient) -> None:
    """One open item per ticket: a ticket with an id by its id (a retry gets its first answer, an edit
    updates the item), one without by its text; in one batch or across requests."""
    first = reviews_client.post("/predict", json=TICKET, headers=PREDICT).json()
    retry = reviews_client.post("/predict", json=TICKET, headers=PREDICT).json()
    assert retry["cached"] is True
    assert (retry["prediction_id"], retry["review_id"]) == (first["prediction_id"], first["review_id"])
    assert first["review_id"] is not None
    # Another helpdesk ticket with the same words is another ticket: its own answer and its own item.
    twin = reviews_client.post("/predict", json={**TICKET, "ticket_id": "HD-8"}, headers=PREDICT).json()
    assert twin["cached"] is True  # the scores came from the cache
    assert twin["review_id"] != first["review_id"] and twin["prediction_id"] != first["prediction_id"]
    # Without ids, the same text shares one open item.
    anonymous = {k: v for k, v in TICKET.items() if k != "ticket_id"}
    a = reviews_client.post("/predict", json=anonymous, headers=PREDICT).json()
    b = reviews_client.post("/predict", json=anonymous, headers=PREDICT).json()
    assert a["review_id"] == b["review_id"] is not None and a["prediction_id"] != b["prediction_id"]
    assert a["review_id"] not in (first["review_id"], twin["review_id"])

    batch = reviews_client.post(
        "/predict/batch", json={"tickets": [_ticket(1), _ticket(2), _ticket(1), TICKET]}, headers=PREDICT
    ).json()
    ids = [p["review_id"] for p in batch["predictions"]]
    assert all(isinstance(i, int) for i in ids)
    assert ids[0] == ids[2] and ids[3] == first["review_id"] and len(set(ids)) == 3
    assert batch["predictions"][0]["prediction_id"] == batch["predictions"][2]["prediction_id"]

    items = reviews_client.get("/reviews", headers=REVIEW).json()["items"]
    assert sorted(i["id"] for i in items) == sorted({*ids, twin["review_id"], a["review_id"]})
    by_id = {i["id"]: i for i in items}
    assert [by_id[i]["ticket_id"] for i in ids] == ["HD-1", "HD-2", "HD-1", "HD-7"]

    # Claimed is still open; a retry of the resolved version keeps its answer, an edit is queued anew.
    claimed = reviews_client.post("/reviews/claim", headers=REVIEW).json()
    sent = next(
        t
        for t in (TICKET, _ticket(1), _ticket(2), {**TICKET, "ticket_id": "HD-8"}, anonymous)
        if t.get("ticket_id") == claimed["ticket_id"]
    )
    repeat = reviews_client.post("/predict", json=sent, headers=PREDICT).json()
    assert repeat["review_id"] == claimed["id"]
    resolved = reviews_client.post(
        f"/reviews/{claimed['id']}/resolve", json={"category": claimed["predicted_category"]}, headers=REVIEW
    )
    assert resolved.status_code == 200, resolved.text
    again = reviews_client.post("/predict", json=sent, headers=PREDICT).json()
    if "ticket_id" in sent:  # the same version of a named ticket: its first answer
        assert again["review_id"] == claimed["id"] and again["prediction_id"] == repeat["prediction_id"]
        edited = {**sent, "description": sent["description"] + " It happened again today."}
        after = reviews_client.post("/predict", json=edited, headers=PREDICT).json()
    else:  # text without an id: queued anew once its item is answered
        after = again
    assert after["review_id"] not in {*ids, twin["review_id"], a["review_id"]}
    assert reviews_client.get("/reviews/stats", headers=REVIEW).json()["pending"] == 5


def test_claim_resolve_and_stats(reviews_client: TestClient, trained: Any) -> None:
    answer = reviews_client.post("/predict", json=TICKET, headers=PREDICT).json()

    claimed = reviews_client.post("/reviews/claim", headers=REVIEW)
    assert claimed.status_code == 200, claimed.text
    item = claimed.json()
    assert item["id"] == answer["review_id"]
    assert (item["status"], item["claimed_by"]) == ("claimed", "alice")
    assert item["lease_expires_at"] is not None

    resolved = reviews_client.post(
        f"/reviews/{item['id']}/resolve",
        json={"category": answer["category"], "note": "model was right"},
        headers=REVIEW,
    )
    assert resolved.status_code == 200, resolved.text
    done = resolved.json()
    assert (done["status"], done["resolved_by"]) == ("resolved", "alice")
    assert (done["resolved_category"], done["resolved_priority"], done["note"]) == (
        answer["category"],
        None,
        "model was right",
    )

    stats = reviews_client.get("/reviews/stats", headers=REVIEW)
    assert stats.status_code == 200, stats.text
    figures = stats.json()
    assert (figures["pending"], figures["claimed"]) == (0, 0)
    assert (figures["resolved_total"], figures["resolved_today"]) == (1, 1)
    assert figures["agreement"] == 1.0
    assert figures["agreement_by_category"] == {
        answer["category"]: {"resolved": 1, "agreed": 1, "agreement": 1.0}
    }
    assert figures["median_seconds_to_resolve"] >= 0.0


def test_second_reviewer_cannot_touch_a_claimed_item_until_released(
    reviews_client: TestClient, trained: Any
) -> None:
    answer = reviews_client.post("/predict", json=TICKET, headers=PREDICT).json()
    item_id = reviews_client.post("/reviews/claim", headers=REVIEW).json()["id"]
    assert item_id == answer["review_id"]

    # Bob finds nothing to claim and may not answer or release alice's item.
    assert reviews_client.post("/reviews/claim", headers=BOB).status_code == 204
    refused = reviews_client.post(
        f"/reviews/{item_id}/resolve", json={"category": answer["category"]}, headers=BOB
    )
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "not_lease_holder"
    assert "'bob'" in error["message"] and "'alice'" in error["message"]
    assert reviews_client.post(f"/reviews/{item_id}/release", headers=BOB).json()["error"]["code"] == (
        "not_lease_holder"
    )

    released = reviews_client.post(f"/reviews/{item_id}/release", headers=REVIEW)
    assert released.status_code == 200, released.text
    assert (released.json()["status"], released.json()["claimed_by"]) == ("pending", None)

    bobs = reviews_client.post("/reviews/claim", headers=BOB)
    assert bobs.status_code == 200
    assert (bobs.json()["id"], bobs.json()["claimed_by"]) == (item_id, "bob")
    resolved = reviews_client.post(
        f"/reviews/{item_id}/resolve", json={"category": answer["category"]}, headers=BOB
    )
    assert resolved.json()["resolved_by"] == "bob"


def test_resolve_is_idempotent_and_a_different_answer_conflicts(
    reviews_client: TestClient, trained: Any
) -> None:
    answer = reviews_client.post("/predict", json=TICKET, headers=PREDICT).json()
    item_id = reviews_client.post("/reviews/claim", headers=REVIEW).json()["id"]
    other = _other_category(trained, answer["category"])
    priority = _labels(trained, "priority")[0]
    body = {"category": other, "priority": priority}

    first = reviews_client.post(f"/reviews/{item_id}/resolve", json=body, headers=REVIEW)
    second = reviews_client.post(f"/reviews/{item_id}/resolve", json=body, headers=REVIEW)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == second.json()
    assert (first.json()["resolved_category"], first.json()["resolved_priority"]) == (other, priority)

    conflict = reviews_client.post(
        f"/reviews/{item_id}/resolve", json={"category": answer["category"]}, headers=REVIEW
    )
    assert conflict.status_code == 409
    error = conflict.json()["error"]
    assert error["code"] == "resolve_conflict"
    assert other in error["message"]
    assert reviews_client.get("/reviews/stats", headers=REVIEW).json()["agreement"] == 0.0


def test_unknown_ids_labels_and_fields_are_refused(reviews_client: TestClient, trained: Any) -> None:
    reviews_client.post("/predict", json=TICKET, headers=PREDICT)
    item_id = reviews_client.post("/reviews/claim", headers=REVIEW).json()["id"]

    unknown = reviews_client.post(
        f"/reviews/{item_id}/resolve", json={"category": "Astrology"}, headers=REVIEW
    )
    assert unknown.status_code == 422
    error = unknown.json()["error"]
    assert [f["field"] for f in error["fields"]] == ["category"]
    for label in _labels(trained, "category"):
        assert label in error["fields"][0]["message"]

    category = _labels(trained, "category")[0]
    bad_priority = reviews_client.post(
        f"/reviews/{item_id}/resolve", json={"category": category, "priority": "whenever"}, headers=REVIEW
    )
    assert bad_priority.status_code == 422
    assert [f["field"] for f in bad_priority.json()["error"]["fields"]] == ["priority"]

    bad_tags = reviews_client.post(
        f"/reviews/{item_id}/resolve", json={"category": category, "tags": ["Astrology"]}, headers=REVIEW
    )
    assert bad_tags.status_code == 422
    [tag_error] = bad_tags.json()["error"]["fields"]
    assert tag_error["field"] == "tags" and "Astrology" in tag_error["message"]

    extra = reviews_client.post(
        f"/reviews/{item_id}/resolve", json={"category": category, "approved": True}, headers=REVIEW
    )
    assert extra.status_code == 422
    assert [f["field"] for f in extra.json()["error"]["fields"]] == ["approved"]

    missing = reviews_client.post("/reviews/999999/resolve", json={"category": category}, headers=REVIEW)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "review_not_found"
    assert reviews_client.post("/reviews/999999/release", headers=REVIEW).status_code == 404
    # None of the refusals touched the item.
    assert reviews_client.get("/reviews", headers=REVIEW).json()["items"][0]["status"] == "claimed"


def test_empty_queue_and_roles(reviews_client: TestClient) -> None:
    empty = reviews_client.post("/reviews/claim", headers=REVIEW)
    assert empty.status_code == 204
    assert empty.content == b""

    forbidden = reviews_client.get("/reviews", headers=PREDICT)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"
    assert reviews_client.post("/reviews/claim", headers=PREDICT).status_code == 403
    assert reviews_client.get("/reviews/stats").status_code == 401
    assert reviews_client.get("/reviews/stats", headers=ADMIN).status_code == 200


def test_export_csv_round_trips_through_the_loader(
    reviews_client: TestClient, trained: Any, tmp_path: Path
) -> None:
    answer = reviews_client.post("/predict", json=TICKET, headers=PREDICT).json()
    item_id = reviews_client.post("/reviews/claim", headers=REVIEW).json()["id"]
    corrected = _other_category(trained, answer["category"])
    reviews_client.post(f"/reviews/{item_id}/resolve", json={"category": corrected}, headers=REVIEW)
    reviews_client.post("/predict", json=_ticket(2), headers=PREDICT)  # still pending: not exported

    export = reviews_client.get("/reviews/export", params={"format": "csv"}, headers=REVIEW)
    assert export.status_code == 200, export.text
    assert export.headers["content-type"].startswith("text/csv")
    assert 'filename="review-corrections-' in export.headers["content-disposition"]
    assert export.headers["content-disposition"].endswith('.csv"')
    header = export.text.splitlines()[0]
    assert header.split(",")[:3] == ["ticket_id", "subject", "description"]
    assert "category" in header.split(",")

    path = tmp_path / "corrections.csv"
    path.write_bytes(export.content)
    frame = load_tickets(
        [path], ColumnMap(text=("subject", "description"), label="category"), require_label=True
    ).frame
    assert len(frame) == 1
    assert frame[LABEL].tolist() == [corrected]
    assert TICKET["subject"] in frame["text"].iloc[0]

    lines = reviews_client.get("/reviews/export", params={"format": "jsonl"}, headers=REVIEW)
    assert lines.status_code == 200
    assert lines.headers["content-disposition"].endswith('.jsonl"')
    rows = [json.loads(line) for line in lines.text.splitlines()]
    assert [(r["ticket_id"], r["category"], r["priority"]) for r in rows] == [
        ("HD-7", corrected, answer["priority"])
    ]
    later = reviews_client.get("/reviews/export", params={"since": "2099-12-31T00:00:00Z"}, headers=REVIEW)
    assert later.text.splitlines() == [header]


@pytest.fixture
def pg_url() -> Iterator[tuple[str, str]]:
    """A throwaway PostgreSQL database: its name and SQLAlchemy URL."""
    name = f"triage_api_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_postgres_queue_and_outage_keeps_predictions_answering(
    make_client: Callable[..., TestClient], pg_url: tuple[str, str]
) -> None:
    name, url = pg_url
    client = make_client(routing_threshold=0.999, routing_rule="threshold", database_url=url)
    queued = client.post("/predict", json=TICKET, headers=PREDICT).json()
    assert isinstance(queued["review_id"], int)
    claimed = client.post("/reviews/claim", headers=REVIEW).json()
    assert claimed["id"] == queued["review_id"]

    # The database goes away under the running service (connections killed, database dropped).
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

    during = client.post("/predict", json=_ticket(3), headers=PREDICT)
    assert during.status_code == 200, during.text
    assert during.json()["route"] == "review"
    assert during.json()["review_id"] is None
    batch = client.post("/predict/batch", json={"tickets": [_ticket(4), TICKET]}, headers=PREDICT)
    assert batch.status_code == 200
    assert [p["review_id"] for p in batch.json()["predictions"]] == [None, None]
    assert batch.json()["predictions"][1]["cached"] is True

    down = client.get("/reviews", headers=REVIEW)
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "review_store_unavailable"


def test_tags_are_queued_with_the_item_and_a_tag_answer_is_kept_and_exported(
    reviews_client: TestClient, trained: Any
) -> None:
    answer = reviews_client.post("/predict", json=_ticket(71), headers=PREDICT).json()
    item = reviews_client.post("/reviews/claim", headers=REVIEW).json()
    assert item["id"] == answer["review_id"]
    assert item["predicted_tags"] == [t["label"] for t in answer["tags"]]
    known = list(trained.tags.model.tags)
    chosen = sorted({known[0], known[-1]})
    body = {"category": item["predicted_category"], "tags": [chosen[1], chosen[0], chosen[0]]}
    done = reviews_client.post(f"/reviews/{item['id']}/resolve", json=body, headers=REVIEW)
    assert done.status_code == 200, done.text
    assert done.json()["resolved_tags"] == chosen  # sorted, each once
    again = reviews_client.post(f"/reviews/{item['id']}/resolve", json=body, headers=REVIEW)
    assert again.status_code == 200  # the same answer repeated is harmless
    other = {**body, "tags": []}
    assert (
        reviews_client.post(f"/reviews/{item['id']}/resolve", json=other, headers=REVIEW).status_code == 409
    )
    export = reviews_client.get("/reviews/export", params={"format": "jsonl"}, headers=REVIEW).text
    rows = [json.loads(line) for line in export.splitlines() if line.strip()]
    [row] = [r for r in rows if r["ticket_id"] == str(_ticket(71)["ticket_id"])]
    assert row["tags"] == "|".join(chosen)
