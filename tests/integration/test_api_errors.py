"""Bad requests and wrong keys: always a 4xx with a JSON body naming what was wrong, never a 5xx."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.integration.conftest import ADMIN, ADMIN_KEY, PREDICT, PREDICT_KEY, REVIEW

GOOD = {"subject": "Printer offline", "description": "The printer on floor 2 shows offline since Monday."}


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


def _fields(error: dict[str, Any]) -> list[str]:
    return [f["field"] for f in error["fields"]]


def _post(client: TestClient, path: str, **kwargs: Any) -> Any:
    return client.post(path, headers={**PREDICT, **kwargs.pop("headers", {})}, **kwargs)


BAD_SINGLE: list[tuple[str, Any, str]] = [
    ("both texts empty", {"subject": "", "description": ""}, "body"),
    ("both texts whitespace", {"subject": "  ", "description": "\n\t"}, "body"),
    ("no text fields at all", {"ticket_id": "x"}, "body"),
    ("subject wrong type", {"subject": 123, "description": "text"}, "subject"),
    ("description a list", {"description": ["a", "b"]}, "description"),
    ("created_at not a time", {**GOOD, "created_at": "next tuesday"}, "created_at"),
    ("metadata not an object", {**GOOD, "metadata": "x"}, "metadata"),
    ("ticket_id an object", {**GOOD, "ticket_id": {"a": 1}}, "ticket_id"),
    ("channel too long", {**GOOD, "channel": "e" * 500}, "channel"),
    ("unknown field", {**GOOD, "descriptoin": "typo"}, "descriptoin"),
    ("customer_tier a number", {**GOOD, "customer_tier": 3}, "customer_tier"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_SINGLE, ids=[c[0] for c in BAD_SINGLE])
def test_bad_ticket_names_the_field(client: TestClient, case: str, body: Any, field: str) -> None:
    error = _error(_post(client, "/predict", json=body), 422)
    assert error["code"] == "invalid_request"
    assert field in _fields(error), (case, error)
    assert field in error["message"]


def test_malformed_json_is_422_with_its_position(client: TestClient) -> None:
    response = _post(
        client, "/predict", content=b'{"subject": "x", ', headers={"Content-Type": "application/json"}
    )
    error = _error(response, 422)
    assert error["code"] == "malformed_json"
    assert "malformed JSON at character" in error["message"]


@pytest.mark.parametrize(
    ("content", "headers", "expected"),
    [
        (b"", {"Content-Type": "application/json"}, "empty"),
        (b'["a", "b"]', {"Content-Type": "application/json"}, "object"),
        (b'{"subject": "x"}', {"Content-Type": "text/plain"}, "application/json"),
        (b"null", {"Content-Type": "application/json"}, "body"),
    ],
    ids=["empty body", "array body", "wrong content type", "null body"],
)
def test_body_that_is_not_a_ticket_object(
    client: TestClient, content: bytes, headers: dict, expected: str
) -> None:
    error = _error(_post(client, "/predict", content=content, headers=headers), 422)
    assert expected in error["message"]


def test_text_over_the_length_limit(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_text_chars=50)
    error = _error(_post(client, "/predict", json={"subject": "ok", "description": "x" * 51}), 422)
    assert _fields(error) == ["description"]
    assert "51 characters; the limit is 50" in error["fields"][0]["message"]
    accepted = _post(client, "/predict", json={"subject": "ok", "description": "x" * 50})
    assert accepted.status_code == 200


def test_default_text_limit_is_20000_characters(client: TestClient) -> None:
    error = _error(_post(client, "/predict", json={"subject": "s" * 20_001}), 422)
    assert _fields(error) == ["subject"]


def test_batch_over_the_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(batch_limit=3)
    error = _error(_post(client, "/predict/batch", json={"tickets": [GOOD] * 4}), 413)
    assert error["code"] == "batch_too_large"
    assert "4 tickets is over the limit of 3" in error["message"]
    assert _post(client, "/predict/batch", json={"tickets": [GOOD] * 3}).status_code == 200


def test_body_over_the_size_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=4096)
    error = _error(_post(client, "/predict", json={"subject": "x", "description": "y" * 5000}), 413)
    assert error["code"] == "payload_too_large"


def test_streamed_body_over_the_size_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=4096)
    chunks = iter([b'{"subject": "', b"y" * 3000, b"y" * 3000, b'"}'])  # no Content-Length: counted as read
    response = _post(client, "/predict", content=chunks, headers={"Content-Type": "application/json"})
    error = _error(response, 413)
    assert "over the limit of 4096 bytes" in error["message"]


def test_bad_batch_item_names_its_index(client: TestClient) -> None:
    tickets = [GOOD, GOOD, {"subject": "", "description": ""}, {**GOOD, "created_at": "soon"}]
    error = _error(_post(client, "/predict/batch", json={"tickets": tickets}), 422)
    assert _fields(error) == ["tickets[2]", "tickets[3].created_at"]
    assert "tickets[2]" in error["message"]


def test_long_text_in_a_batch_names_its_index(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_text_chars=100)
    tickets = [GOOD, {"subject": "a", "description": "z" * 101}]
    error = _error(_post(client, "/predict/batch", json={"tickets": tickets}), 422)
    assert _fields(error) == ["tickets[1].description"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tickets": []}, "tickets"),
        ({"tickets": "all"}, "tickets"),
        ({}, "tickets"),
        ({"items": [GOOD]}, "items"),
    ],
    ids=["empty list", "not a list", "missing", "wrong key"],
)
def test_bad_batch_envelope(client: TestClient, body: Any, field: str) -> None:
    error = _error(_post(client, "/predict/batch", json=body), 422)
    assert field in _fields(error)


def test_bad_query_and_method(client: TestClient) -> None:
    error = _error(_post(client, "/predict?top_k=-1", json=GOOD), 422)
    assert _fields(error) == ["top_k"]
    error = _error(client.get("/predict", headers=PREDICT), 405)
    assert error["code"] == "method_not_allowed"
    error = _error(client.get("/no/such/path"), 404)
    assert error["code"] == "not_found"


def test_a_rejected_request_does_not_disturb_the_next(client: TestClient) -> None:
    _error(_post(client, "/predict/batch", json={"tickets": [GOOD, {"subject": 1}]}), 422)
    ok = _post(client, "/predict/batch", json={"tickets": [GOOD]})
    assert ok.status_code == 200
    assert len(ok.json()["predictions"]) == 1


# --- keys and roles -------------------------------------------------------------------------------


def test_missing_key_is_401_naming_both_headers(client: TestClient) -> None:
    response = client.post("/predict", json=GOOD)
    error = _error(response, 401)
    assert error["code"] == "unauthorized"
    assert "Authorization: Bearer" in error["message"]
    assert "X-API-Key" in error["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_key_is_401(client: TestClient) -> None:
    error = _error(client.post("/predict", json=GOOD, headers={"X-API-Key": "not-a-real-key"}), 401)
    assert "not-a-real-key" not in error["message"]


def test_wrong_role_is_403(client: TestClient) -> None:
    error = _error(client.post("/predict", json=GOOD, headers=REVIEW), 403)
    assert error["code"] == "forbidden"
    assert "predict" in error["message"]
    error = _error(client.post("/admin/reload", headers=PREDICT), 403)
    assert "admin" in error["message"]


def test_both_header_styles_and_admin_everywhere(client: TestClient) -> None:
    assert client.post("/predict", json=GOOD, headers={"X-API-Key": PREDICT_KEY}).status_code == 200
    assert (
        client.post("/predict", json=GOOD, headers={"Authorization": f"bearer {PREDICT_KEY}"}).status_code
        == 200
    )
    assert client.post("/predict", json=GOOD, headers=ADMIN).status_code == 200
    assert client.get("/model", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200


def test_auth_failures_are_counted_by_status(client: TestClient) -> None:
    client.post("/predict", json=GOOD)
    client.post("/predict", json=GOOD, headers=REVIEW)
    text = client.get("/metrics").text
    assert 'triage_http_requests_total{method="POST",route="/predict",status="401"} 1.0' in text
    assert 'triage_http_requests_total{method="POST",route="/predict",status="403"} 1.0' in text


def test_disabled_auth_serves_without_keys(make_client: Callable[..., TestClient]) -> None:
    client = make_client(auth_disabled=True, api_keys=None)
    assert client.post("/predict", json=GOOD).status_code == 200


def test_the_app_refuses_to_start_without_keys(models_dir: Any, tmp_path: Any) -> None:
    from ticket_triage.config import Settings
    from ticket_triage.serving.app import create_app
    from ticket_triage.serving.auth import KeySpecError

    settings = Settings(models_dir=models_dir, api_keys=None, api_key_file=tmp_path / "absent.json")
    with pytest.raises(KeySpecError, match="no API keys configured"):
        create_app(settings)
