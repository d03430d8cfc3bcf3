"""Input no store can hold is refused at the edge: 422 naming the field, and nothing of it is stored.

Bodies are sent as raw JSON text, because a client's JSON encoder would refuse NaN or escape-encode lone
surrogates differently; the server must cope with whatever arrives on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.integration.conftest import ADMIN, PREDICT, REVIEW

GOOD = {"subject": "Printer offline", "description": "The printer on floor 2 shows offline since Monday."}
JSON = {"Content-Type": "application/json"}
INT64_MAX = 2**63 - 1


def _raw(body: Any) -> bytes:
    """JSON as Python writes it: NaN and Infinity as bare words, lone surrogates as \\uXXXX escapes."""
    return json.dumps(body, allow_nan=True).encode("ascii")


def _nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep counting itself: {"n": {"n": ... {"leaf": 1}}}."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def _refusal(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    """The error body of a refusal, after checking it is the service's JSON shape and no stack trace."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["message"]
    return body["error"]


def _fields(error: dict[str, Any]) -> list[str]:
    return [f["field"] for f in error["fields"]]


#: (case, ticket, field the 422 must name, words its message must hold)
POISON: list[tuple[str, dict[str, Any], str, str]] = [
    ("NUL in subject", {**GOOD, "subject": "Printer\x00 offline"}, "subject", "U+0000"),
    ("escape in description", {**GOOD, "description": "red \x1b[31m text"}, "description", "U+001B"),
    ("DEL in channel", {**GOOD, "channel": "email\x7f"}, "channel", "control character"),
    ("C1 control in tier", {**GOOD, "customer_tier": "gold\x85"}, "customer_tier", "U+0085"),
    ("bell in urgency", {**GOOD, "urgency": "\x07high"}, "urgency", "control character"),
    ("form feed in language", {**GOOD, "language": "en\x0c"}, "language", "control character"),
    ("NUL in ticket_id", {**GOOD, "ticket_id": "HD\x001"}, "ticket_id", "control character"),
    ("lone surrogate in subject", {**GOOD, "subject": "broken \ud800 text"}, "subject", "lone surrogate"),
    ("lone low surrogate", {**GOOD, "description": "x\udfff"}, "description", "lone surrogate"),
    ("surrogate in ticket_id", {**GOOD, "ticket_id": "\ud800"}, "ticket_id", "lone surrogate"),
    ("ticket_id past int64", {**GOOD, "ticket_id": 2**63}, "ticket_id", "64-bit"),
    ("ticket_id below int64", {**GOOD, "ticket_id": -(2**63) - 1}, "ticket_id", "64-bit"),
    ("300-digit ticket_id", {**GOOD, "ticket_id": 10**300}, "ticket_id", "64-bit"),
    ("NaN ticket_id", {**GOOD, "ticket_id": float("nan")}, "ticket_id", "string or an integer"),
    ("NaN in metadata", {**GOOD, "metadata": {"score": float("nan")}}, "metadata", "metadata.score"),
    (
        "Infinity deep in metadata",
        {**GOOD, "metadata": {"a": [1, {"b": float("inf")}]}},
        "metadata",
        "a[1].b",
    ),
    ("-Infinity in metadata", {**GOOD, "metadata": {"x": float("-inf")}}, "metadata", "finite"),
    ("big integer in metadata", {**GOOD, "metadata": {"crm": {"id": 2**64}}}, "metadata", "64-bit"),
    ("NUL in metadata value", {**GOOD, "metadata": {"note": "a\x00b"}}, "metadata", "metadata.note"),
    ("surrogate in metadata key", {**GOOD, "metadata": {"k\ud800": 1}}, "metadata", "lone surrogate"),
    # pydantic cannot read such a key at all: refused as the body, still a 422 and never a 500.
    ("surrogate in an unknown field's name", {**GOOD, "x\ud800": 1}, "body", "valid string"),
    ("metadata 9 deep", {**GOOD, "metadata": _nested(9)}, "metadata", "deeper than 8"),
    ("metadata 600 deep", {**GOOD, "metadata": _nested(600)}, "metadata", "deeper than 8"),
    ("metadata over 16 KiB", {**GOOD, "metadata": {"blob": "x" * 17_000}}, "metadata", "over the limit"),
    ("metadata 257 keys", {**GOOD, "metadata": {f"k{i}": i for i in range(257)}}, "metadata", "256 keys"),
    ("created_at year 1", {**GOOD, "created_at": "0001-01-01T00:00:00Z"}, "created_at", "out of range"),
    ("created_at year 2300", {**GOOD, "created_at": "2300-01-01T00:00:00Z"}, "created_at", "out of range"),
    (
        "created_at year 1 east of UTC",
        {**GOOD, "created_at": "0001-01-01T00:00:00+05:00"},
        "created_at",
        "1970",
    ),
    ("created_at year 9999 west", {**GOOD, "created_at": "9999-12-31T23:59:59-05:00"}, "created_at", "2100"),
    ("created_at just before 1970", {**GOOD, "created_at": "1969-12-31T23:59:59Z"}, "created_at", "range"),
    ("created_at 2100 itself", {**GOOD, "created_at": "2100-01-01T00:00:00Z"}, "created_at", "range"),
    ("created_at 1970 in +01:00", {**GOOD, "created_at": "1970-01-01T00:30:00+01:00"}, "created_at", "range"),
]

#: Values at the edge of every bound, each of which must be accepted, stored and read back.
EDGE_GOOD: list[dict[str, Any]] = [
    {**GOOD, "ticket_id": INT64_MAX, "created_at": "1970-01-01T00:00:00Z"},
    {**GOOD, "ticket_id": -(2**63), "created_at": "2099-12-31T23:59:59Z"},
    {**GOOD, "subject": "tab\tnew line\ncarriage return\r", "metadata": _nested(8)},
    {
        **GOOD,
        "subject": "Ümlaut, 中文, emoji 😀",
        "metadata": {"big": INT64_MAX, "small": -(2**63), "pi": 3.14, "k": ["v", None, True]},
    },
    {**GOOD, "metadata": {"blob": "x" * 16_000}},
]


@pytest.fixture
def queue_client(make_client: Callable[..., TestClient], tmp_path: Path) -> TestClient:
    """Every answer goes to the review queue, so whatever a request got stored shows in GET /reviews."""
    return make_client(
        routing_threshold=0.999, routing_rule="threshold", database_file=tmp_path / "edge.sqlite3"
    )


def _queued(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/reviews", params={"limit": 1000}, headers=REVIEW)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_poisoned_tickets_are_refused_by_field_and_never_stored(queue_client: TestClient) -> None:
    wrong: list[str] = []
    for case, ticket, field, words in POISON:
        response = queue_client.post("/predict", content=_raw(ticket), headers={**PREDICT, **JSON})
        error = _refusal(response)
        if field not in _fields(error) or words not in error["message"] or field not in error["message"]:
            wrong.append(f"{case}: {error}")
    assert not wrong, "\n".join(wrong)
    assert _queued(queue_client) == []


def test_a_poisoned_ticket_in_a_batch_is_named_by_its_index(queue_client: TestClient) -> None:
    tickets = [GOOD, {**GOOD, "metadata": {"x": float("nan")}}, GOOD, {**GOOD, "subject": "\x00"}]
    error = _refusal(
        queue_client.post("/predict/batch", content=_raw({"tickets": tickets}), headers={**PREDICT, **JSON})
    )
    assert _fields(error) == ["tickets[1].metadata", "tickets[3].subject"]
    assert _queued(queue_client) == []


def test_values_at_every_bound_are_accepted_stored_and_read_back(queue_client: TestClient) -> None:
    answers = []
    for ticket in EDGE_GOOD:
        response = queue_client.post("/predict", content=_raw(ticket), headers={**PREDICT, **JSON})
        assert response.status_code == 200, (ticket, response.text)
        answers.append(response.json())
    assert [a["ticket_id"] for a in answers[:2]] == [INT64_MAX, -(2**63)]
    by_id = {item["id"]: item for item in _queued(queue_client)}
    stored = [by_id[a["review_id"]] for a in answers]
    assert [s["metadata"] for s in stored] == [t.get("metadata") for t in EDGE_GOOD]
    assert stored[2]["subject"] == EDGE_GOOD[2]["subject"]
    assert stored[3]["subject"] == EDGE_GOOD[3]["subject"]
    assert stored[0]["created_at"].startswith("1970-01-01T00:00:00")
    assert stored[1]["created_at"].startswith("2099-12-31T23:59:59")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"subject": "x", "metadata": {"n": ' + b"9" * 5000 + b"}}", "too long"),
        (b'{"subject": "caf\xe9"}', "not UTF-8"),
        (b'{"subject": "x", "metadata": {"n": NaN', "malformed JSON"),
    ],
    ids=["100k-deep", "5000-digit integer", "latin-1 bytes", "truncated"],
)
def test_bodies_json_cannot_hold_are_422_not_400_or_500(
    client: TestClient, content: bytes, words: str
) -> None:
    error = _refusal(client.post("/predict", content=content, headers={**PREDICT, **JSON}))
    assert error["code"] == "malformed_json"
    assert words in error["message"]
    assert _fields(error) == ["body"]


def test_batch_total_characters_have_a_cap(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_batch_chars=100)
    ticket = {"subject": "s" * 10, "description": "d" * 40}  # 50 characters each
    error = _refusal(client.post("/predict/batch", json={"tickets": [ticket] * 3}, headers=PREDICT), 413)
    assert error["code"] == "batch_too_large"
    assert "150 characters" in error["message"] and "limit of 100" in error["message"]
    assert _fields(error) == ["tickets"]
    assert client.post("/predict/batch", json={"tickets": [ticket] * 2}, headers=PREDICT).status_code == 200


def test_review_and_admin_bodies_refuse_unsafe_text(queue_client: TestClient) -> None:
    queue_client.post("/predict", json=GOOD, headers=PREDICT)
    item_id = queue_client.post("/reviews/claim", headers=REVIEW).json()["id"]
    for body, field in [
        ({"category": "Billing\x00"}, "category"),
        ({"category": "\ud800"}, "category"),
        ({"category": "x", "priority": "high\x1b"}, "priority"),
        ({"category": "x", "note": "ok\x00"}, "note"),
    ]:
        response = queue_client.post(
            f"/reviews/{item_id}/resolve", content=_raw(body), headers={**REVIEW, **JSON}
        )
        assert field in _fields(_refusal(response)), body
    assert _queued(queue_client)[0]["status"] == "claimed"  # none of them touched the item
    error = _refusal(
        queue_client.post("/admin/reload", content=_raw({"bundle": "a\x00b"}), headers={**ADMIN, **JSON})
    )
    assert _fields(error) == ["bundle"]


#: (path, query, field the 422 must name)
OUT_OF_BOUNDS: list[tuple[str, dict[str, str], str]] = [
    ("/reviews", {"offset": "1e20"}, "offset"),
    ("/reviews", {"offset": str(10**20)}, "offset"),
    ("/reviews", {"offset": "1000001"}, "offset"),
    ("/reviews", {"offset": "-1"}, "offset"),
    ("/reviews", {"limit": "0"}, "limit"),
    ("/reviews", {"limit": "1001"}, "limit"),
    ("/reviews", {"limit": str(2**64)}, "limit"),
    ("/reviews", {"since": "0001-01-01T00:00:00+05:00"}, "since"),
    ("/reviews", {"since": "2300-01-01T00:00:00Z"}, "since"),
    ("/reviews", {"category": "a\x00b"}, "category"),
    ("/reviews", {"category": "c" * 201}, "category"),
    ("/reviews", {"status": "lost"}, "status"),
    ("/reviews/export", {"since": "0001-01-01T00:00:00+05:00"}, "since"),
    ("/reviews/export", {"since": "9999-12-31T23:59:59-01:00"}, "since"),
    ("/reviews/export", {"format": "xlsx"}, "format"),
]


def test_query_parameters_out_of_bounds_are_422(queue_client: TestClient) -> None:
    wrong = []
    for path, params, field in OUT_OF_BOUNDS:
        error = _refusal(queue_client.get(path, params=params, headers=REVIEW))
        if _fields(error) != [field]:
            wrong.append(f"{path} {params}: {error}")
    assert not wrong, "\n".join(wrong)
    top_k = _refusal(queue_client.post("/predict", params={"top_k": str(10**30)}, json=GOOD, headers=PREDICT))
    assert _fields(top_k) == ["top_k"]
    # The bounds themselves are accepted.
    for params in ({"offset": "1000000", "limit": "1000"}, {"since": "1970-01-01T00:00:00Z"}):
        assert queue_client.get("/reviews", params=params, headers=REVIEW).status_code == 200, params
    assert (
        queue_client.get(
            "/reviews/export", params={"since": "2099-12-31T23:59:59Z"}, headers=REVIEW
        ).status_code
        == 200
    )


def test_path_ids_out_of_bounds_are_422_and_the_largest_is_404(queue_client: TestClient) -> None:
    body = {"category": "x"}
    for bad in (str(2**63), "0", "-1", str(10**30), "1.5"):
        error = _refusal(queue_client.post(f"/reviews/{bad}/release", headers=REVIEW))
        assert _fields(error) == ["item_id"], bad
        error = _refusal(queue_client.post(f"/reviews/{bad}/resolve", json=body, headers=REVIEW))
        assert "item_id" in _fields(error), bad
    missing = queue_client.post(f"/reviews/{INT64_MAX}/release", headers=REVIEW)
    assert _refusal(missing, 404)["code"] == "review_not_found"
