from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from ticket_triage.serving import auth
from ticket_triage.serving.auth import (
    AuthError,
    KeyEntry,
    KeySpecError,
    KeyStore,
    Principal,
    Role,
    add_key,
    ensure_key_file,
    first_run_path,
    hash_key,
    parse_key_spec,
    presented_key,
    require_roles,
    startup_key_store,
)

PREDICT_KEY = "predict-key-0001"
REVIEW_KEY = "review-key-0002"
ADMIN_KEY = "admin-key-0003"
SPEC = f"helpdesk:predict:{PREDICT_KEY},alice:review:{REVIEW_KEY},admin:{ADMIN_KEY}"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- parse_key_spec ---------------------------------------------------------------------------------


def test_two_part_entries_use_the_role_as_name() -> None:
    assert parse_key_spec("predict:KEY1abcd,review:KEY2abcd,admin:KEY3abcd") == [
        ("predict", Role.PREDICT, "KEY1abcd"),
        ("review", Role.REVIEW, "KEY2abcd"),
        ("admin", Role.ADMIN, "KEY3abcd"),
    ]


def test_three_part_entries_carry_a_name() -> None:
    assert parse_key_spec("helpdesk:predict:k1-long-key,alice@example.com:review:k2-long-key") == [
        ("helpdesk", Role.PREDICT, "k1-long-key"),
        ("alice@example.com", Role.REVIEW, "k2-long-key"),
    ]


def test_whitespace_empty_entries_and_role_case_are_tolerated() -> None:
    spec = " predict : key-aaaa-1 ,, ,\n bob : REVIEW : key-bbbb-2 ,"
    assert parse_key_spec(spec) == [
        ("predict", Role.PREDICT, "key-aaaa-1"),
        ("bob", Role.REVIEW, "key-bbbb-2"),
    ]
    assert parse_key_spec("") == []
    assert parse_key_spec(" , ,") == []


def test_a_key_may_contain_colons_after_the_role() -> None:
    assert parse_key_spec("predict:abc:defghijk") == [("predict", Role.PREDICT, "abc:defghijk")]
    assert parse_key_spec("carol:admin:abc:defghijk") == [("carol", Role.ADMIN, "abc:defghijk")]


@pytest.mark.parametrize(
    ("spec", "position", "secret", "problem"),
    [
        ("predict:goodkey-1,nocolonsecret99", 2, "nocolonsecret99", "expected ROLE:KEY"),
        ("predict:goodkey-1,boss:supersecret99", 2, "supersecret99", "unknown role"),
        ("alice:reviewer:supersecret99", 1, "supersecret99", "unknown role"),
        ("alice:review:", 1, None, "empty key"),
        ("predict:goodkey-1,,review:shortk", 3, "shortk", "too short"),
        ("alice:review:has space in it", 1, "has space in it", "whitespace"),
        ("bad name!:review:longenough-secret", 1, "longenough-secret", "invalid name"),
    ],
)
def test_spec_errors_name_the_entry_and_never_the_key(
    spec: str, position: int, secret: str | None, problem: str
) -> None:
    with pytest.raises(KeySpecError) as caught:
        parse_key_spec(spec)
    message = str(caught.value)
    assert f"entry {position}" in message
    assert problem in message
    if secret is not None:
        assert secret not in message
    assert "goodkey-1" not in message


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_key(PREDICT_KEY) == hashlib.sha256(PREDICT_KEY.encode()).hexdigest()


# --- ensure_key_file / add_key ----------------------------------------------------------------------


def test_ensure_key_file_creates_hashes_and_a_private_first_run_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "var" / "api_keys.json"  # the parent does not exist yet
    with caplog.at_level(logging.DEBUG):
        keys = ensure_key_file(path)

    assert keys is not None
    assert set(keys) == set(Role)
    assert len(set(keys.values())) == 3
    assert all(len(k) >= 40 for k in keys.values())  # token_urlsafe(32) is 43 characters

    assert _mode(path) == 0o600
    document = json.loads(path.read_text())
    assert document["format"] == 1
    assert [(e["name"], e["role"]) for e in document["keys"]] == [(r.value, r.value) for r in Role]
    assert {e["role"]: e["sha256"] for e in document["keys"]} == {
        r.value: hash_key(k) for r, k in keys.items()
    }
    assert all(e["created_at"].endswith("+00:00") for e in document["keys"])
    raw = path.read_text()
    assert not any(k in raw for k in keys.values())

    plain = first_run_path(path)
    assert plain == tmp_path / "var" / "api_keys.first-run.txt"
    assert _mode(plain) == 0o600
    lines = plain.read_text().splitlines()
    assert lines[0].startswith("#")
    assert "hashes" in lines[0]
    assert "delete" in lines[0]
    assert lines[1:] == [f"{r.value}:{k}" for r, k in keys.items()]

    assert not any(k in caplog.text for k in keys.values())
    assert str(plain) in caplog.text
    # no temp files left beside them
    assert sorted(p.name for p in path.parent.iterdir()) == ["api_keys.first-run.txt", "api_keys.json"]

    store = KeyStore.load(env_spec=None, key_file=path)
    for role, key in keys.items():
        assert store.authenticate(key) == Principal(role.value, role)


def test_second_ensure_returns_none_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "api_keys.json"
    assert ensure_key_file(path) is not None
    plain = first_run_path(path)
    before = (path.read_bytes(), path.stat().st_mtime_ns, plain.read_bytes())

    assert ensure_key_file(path) is None
    assert (path.read_bytes(), path.stat().st_mtime_ns, plain.read_bytes()) == before


def test_ensure_replaces_a_stale_first_run_file(tmp_path: Path) -> None:
    path = tmp_path / "api_keys.json"
    first_run_path(path).write_text("predict:old-key-from-a-deleted-file\n")
    keys = ensure_key_file(path)
    assert keys is not None
    text = first_run_path(path).read_text()
    assert "old-key-from-a-deleted-file" not in text
    assert keys[Role.ADMIN] in text


def test_add_key_creates_the_file_and_the_key_authenticates(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "api_keys.json"
    key = add_key(path, "alice", Role.REVIEW)
    assert len(key) >= 40
    assert _mode(path) == 0o600
    assert key not in path.read_text()
    store = KeyStore.load(env_spec=None, key_file=path)
    assert store.names() == [("alice", Role.REVIEW)]
    assert store.authenticate(key) == Principal("alice", Role.REVIEW)


def test_add_key_appends_and_keeps_existing_entries(tmp_path: Path) -> None:
    path = tmp_path / "api_keys.json"
    keys = ensure_key_file(path)
    assert keys is not None
    original = json.loads(path.read_text())["keys"]

    key = add_key(path, "helpdesk", Role.PREDICT)

    entries = json.loads(path.read_text())["keys"]
    assert entries[:3] == original
    assert (entries[3]["name"], entries[3]["role"], entries[3]["sha256"]) == (
        "helpdesk",
        "predict",
        hash_key(key),
    )
    store = KeyStore.load(env_spec=None, key_file=path)
    assert len(store) == 4
    assert store.authenticate(key) == Principal("helpdesk", Role.PREDICT)
    assert store.authenticate(keys[Role.REVIEW]) == Principal("review", Role.REVIEW)


def test_add_key_refuses_a_duplicate_or_invalid_name(tmp_path: Path) -> None:
    path = tmp_path / "api_keys.json"
    add_key(path, "alice", Role.REVIEW)
    before = path.read_bytes()
    with pytest.raises(KeySpecError, match="'alice' already exists"):
        add_key(path, "alice", Role.ADMIN)
    with pytest.raises(KeySpecError, match="invalid name"):
        add_key(path, "no spaces please", Role.ADMIN)
    assert path.read_bytes() == before


# --- key file loading -------------------------------------------------------------------------------


def _write_key_file(path: Path, document: object) -> Path:
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    path.chmod(0o600)
    return path


def test_missing_key_file_is_an_empty_store(tmp_path: Path) -> None:
    store = KeyStore.load(env_spec=None, key_file=tmp_path / "absent.json")
    assert len(store) == 0
    assert store.authenticate(PREDICT_KEY) is None


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ({"format": 2, "keys": []}, '"format": 1'),
        ({"format": 1, "keys": {}}, '"keys" must be a list'),
        (
            {
                "format": 1,
                "keys": [{"name": "a", "role": "admin", "sha256": "0" * 64}, {"name": "b", "role": "x"}],
            },
            "entry 2 (b): unknown role",
        ),
        ({"format": 1, "keys": [{"name": "a", "role": "admin", "sha256": "abc"}]}, "entry 1 (a): sha256"),
        ({"format": 1, "keys": ["x"]}, "entry 1: expected an object"),
    ],
)
def test_bad_key_file_is_a_key_spec_error(tmp_path: Path, document: object, fragment: str) -> None:
    path = _write_key_file(tmp_path / "api_keys.json", document)
    with pytest.raises(KeySpecError) as caught:
        KeyStore.load(env_spec=None, key_file=path)
    assert fragment in str(caught.value)
    assert str(path) in str(caught.value)


def test_group_writable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "api_keys.json"
    ensure_key_file(path)
    path.chmod(0o664)
    with pytest.raises(KeySpecError, match="chmod 600"):
        KeyStore.load(env_spec=None, key_file=path)


# --- KeyStore ---------------------------------------------------------------------------------------


def test_authenticate_returns_the_principal_or_none() -> None:
    store = KeyStore.load(env_spec=SPEC, key_file=None)
    assert len(store) == 3
    assert store.names() == [("helpdesk", Role.PREDICT), ("alice", Role.REVIEW), ("admin", Role.ADMIN)]
    assert store.authenticate(PREDICT_KEY) == Principal("helpdesk", Role.PREDICT)
    assert store.authenticate(REVIEW_KEY) == Principal("alice", Role.REVIEW)
    assert store.authenticate(ADMIN_KEY) == Principal("admin", Role.ADMIN)
    assert store.authenticate(PREDICT_KEY + "x") is None
    assert store.authenticate(PREDICT_KEY[:-1]) is None
    assert store.authenticate("") is None


def test_file_and_environment_keys_are_merged(tmp_path: Path) -> None:
    path = tmp_path / "api_keys.json"
    file_keys = ensure_key_file(path)
    assert file_keys is not None
    store = KeyStore.load(env_spec="helpdesk:predict:env-key-123456", key_file=path)
    assert len(store) == 4
    assert ("helpdesk", Role.PREDICT) in store.names()
    assert store.authenticate("env-key-123456") == Principal("helpdesk", Role.PREDICT)
    assert store.authenticate(file_keys[Role.ADMIN]) == Principal("admin", Role.ADMIN)


def test_the_same_key_in_both_sources_counts_once_but_one_key_cannot_have_two_identities(
    tmp_path: Path,
) -> None:
    path = tmp_path / "api_keys.json"
    file_keys = ensure_key_file(path)
    assert file_keys is not None
    store = KeyStore.load(env_spec=f"predict:{file_keys[Role.PREDICT]}", key_file=path)
    assert len(store) == 3

    with pytest.raises(KeySpecError, match="same key") as caught:
        KeyStore.load(env_spec="alice:review:shared-key-1,bob:admin:shared-key-1", key_file=None)
    assert "shared-key-1" not in str(caught.value)


def test_authenticate_compares_against_every_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore.load(env_spec=SPEC, key_file=None)
    calls: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    assert store.authenticate(PREDICT_KEY) == Principal("helpdesk", Role.PREDICT)  # the first entry
    assert len(calls) == 3
    calls.clear()
    assert store.authenticate("nobody-has-this-key") is None
    assert len(calls) == 3


def test_key_entries_need_a_sha256_digest() -> None:
    with pytest.raises(KeySpecError, match="not a SHA-256"):
        KeyStore([KeyEntry("x", Role.ADMIN, "plaintext-key")])


# --- presented_key ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        (None, None, None),
        ("", None, None),
        (None, "   ", None),
        ("Bearer abc-123", None, "abc-123"),
        ("bearer abc-123", None, "abc-123"),
        ("  BEARER   abc-123  ", None, "abc-123"),
        (None, "abc-123", "abc-123"),
        (None, " abc-123 ", "abc-123"),
        ("Bearer abc-123", "abc-123", "abc-123"),
    ],
)
def test_presented_key_accepts_bearer_or_x_api_key(
    authorization: str | None, x_api_key: str | None, expected: str | None
) -> None:
    assert presented_key(authorization, x_api_key) == expected


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "fragment"),
    [
        ("Basic dXNlcjpzZWNyZXQ=", None, "malformed Authorization"),
        ("Bearer", None, "malformed Authorization"),
        ("Bearer    ", None, "malformed Authorization"),
        ("Token secret-token-1", "secret-token-1", "malformed Authorization"),
        ("Bearer secret-token-1", "secret-token-2", "different keys"),
    ],
)
def test_malformed_or_conflicting_headers_are_401(
    authorization: str, x_api_key: str | None, fragment: str
) -> None:
    with pytest.raises(AuthError) as caught:
        presented_key(authorization, x_api_key)
    error = caught.value
    assert error.status_code == 401
    assert error.code == "unauthorized"
    assert fragment in error.message
    for secret in ("dXNlcjpzZWNyZXQ=", "secret-token-1", "secret-token-2"):
        assert secret not in error.message
    if "malformed" in fragment:
        assert "Authorization: Bearer <key>" in error.message
        assert "X-API-Key: <key>" in error.message


# --- the FastAPI dependency -------------------------------------------------------------------------


def _app(store: KeyStore | None, *, auth_disabled: bool = False) -> FastAPI:
    app = FastAPI()
    if store is not None:
        app.state.keys = store
    app.state.auth_disabled = auth_disabled

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)

    @app.post("/predict")
    async def predict(
        request: Request, who: Annotated[Principal, Depends(require_roles(Role.PREDICT))]
    ) -> dict[str, str]:
        return {"name": who.name, "role": who.role.value, "state": request.state.principal.name}

    @app.get("/reviews")
    async def reviews(who: Annotated[Principal, Depends(require_roles(Role.REVIEW))]) -> dict[str, str]:
        return {"name": who.name, "role": who.role.value}

    @app.get("/admin")
    async def admin(who: Annotated[Principal, Depends(require_roles(Role.ADMIN))]) -> dict[str, str]:
        return {"name": who.name, "role": who.role.value}

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(_app(KeyStore.load(env_spec=SPEC, key_file=None)))


def test_missing_key_is_401_with_json_body_naming_both_headers(client: TestClient) -> None:
    response = client.post("/predict")
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["code"] == "unauthorized"
    assert "missing API key" in body["error"]["message"]
    assert "Authorization: Bearer <key>" in body["error"]["message"]
    assert "X-API-Key: <key>" in body["error"]["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_wrong_key_is_401_and_not_echoed(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        response = client.post("/predict", headers={"Authorization": "Bearer wrong-key-98765"})
        by_header = client.post("/predict", headers={"X-API-Key": "wrong-key-98765"})
    for r in (response, by_header):
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        assert "unknown API key" in r.json()["error"]["message"]
        assert "wrong-key-98765" not in r.text
    assert "wrong-key-98765" not in caplog.text


def test_malformed_authorization_header_is_401(client: TestClient) -> None:
    response = client.post("/predict", headers={"Authorization": f"Basic {PREDICT_KEY}"})
    assert response.status_code == 401
    assert "malformed Authorization" in response.json()["error"]["message"]
    assert PREDICT_KEY not in response.text


def test_wrong_role_is_403_naming_the_needed_role(client: TestClient) -> None:
    response = client.post("/predict", headers={"Authorization": f"Bearer {REVIEW_KEY}"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert "needs role predict (or admin)" in error["message"]
    assert "'alice' has role review" in error["message"]
    assert REVIEW_KEY not in response.text

    response = client.get("/admin", headers={"X-API-Key": PREDICT_KEY})
    assert response.status_code == 403
    assert "needs role admin;" in response.json()["error"]["message"]


def test_right_role_via_bearer_and_via_x_api_key(client: TestClient) -> None:
    expected = {"name": "helpdesk", "role": "predict", "state": "helpdesk"}
    by_bearer = client.post("/predict", headers={"Authorization": f"Bearer {PREDICT_KEY}"})
    assert (by_bearer.status_code, by_bearer.json()) == (200, expected)
    by_header = client.post("/predict", headers={"X-API-Key": PREDICT_KEY})
    assert (by_header.status_code, by_header.json()) == (200, expected)
    review = client.get("/reviews", headers={"X-API-Key": REVIEW_KEY})
    assert (review.status_code, review.json()) == (200, {"name": "alice", "role": "review"})


def test_admin_is_allowed_on_every_route(client: TestClient) -> None:
    headers = {"Authorization": f"bearer {ADMIN_KEY}"}
    assert client.post("/predict", headers=headers).json()["name"] == "admin"
    assert client.get("/reviews", headers=headers).json() == {"name": "admin", "role": "admin"}
    assert client.get("/admin", headers=headers).status_code == 200


def test_auth_disabled_serves_everyone_as_anonymous_admin() -> None:
    client = TestClient(_app(KeyStore([]), auth_disabled=True))
    response = client.get("/admin")
    assert (response.status_code, response.json()) == (200, {"name": "anonymous", "role": "admin"})
    assert client.post("/predict", headers={"X-API-Key": "anything-at-all"}).json()["name"] == "anonymous"


def test_enabled_auth_without_a_key_store_is_a_server_error() -> None:
    client = TestClient(_app(None))
    with pytest.raises(RuntimeError, match=r"app\.state\.keys"):
        client.get("/admin", headers={"X-API-Key": ADMIN_KEY})


def test_openapi_documents_both_schemes(client: TestClient) -> None:
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["HTTPBearer"]["description"],
    }
    assert schemes["APIKeyHeader"]["in"] == "header"
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"


def test_require_roles_needs_a_role() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        require_roles()


# --- start-up ---------------------------------------------------------------------------------------


def test_first_start_creates_the_key_file(tmp_path: Path) -> None:
    path = tmp_path / "var" / "api_keys.json"
    store, created = startup_key_store(
        env_spec=None, key_file=path, auth_disabled=False, create_if_missing=True
    )
    assert created is not None
    assert len(store) == 3
    assert store.authenticate(created[Role.REVIEW]) == Principal("review", Role.REVIEW)

    again, created_again = startup_key_store(
        env_spec=None, key_file=path, auth_disabled=False, create_if_missing=True
    )
    assert created_again is None
    assert again.names() == store.names()


def test_environment_keys_need_no_key_file(tmp_path: Path) -> None:
    path = tmp_path / "api_keys.json"
    store, created = startup_key_store(
        env_spec=SPEC, key_file=path, auth_disabled=False, create_if_missing=True
    )
    assert created is None
    assert not path.exists()
    assert len(store) == 3


def test_serve_without_keys_refuses_instead_of_creating_them(tmp_path: Path) -> None:
    path = tmp_path / "api_keys.json"
    with pytest.raises(KeySpecError, match="no API keys configured"):
        startup_key_store(env_spec=None, key_file=path, auth_disabled=False)
    assert not path.exists()


def test_no_keys_refuses_to_start_unless_auth_is_disabled(tmp_path: Path) -> None:
    path = _write_key_file(tmp_path / "api_keys.json", {"format": 1, "keys": []})
    with pytest.raises(KeySpecError, match="no API keys configured"):
        startup_key_store(env_spec=None, key_file=path, auth_disabled=False)
    with pytest.raises(KeySpecError, match="no API keys configured"):
        startup_key_store(env_spec=" , ", key_file=path, auth_disabled=False)

    absent = tmp_path / "dev" / "api_keys.json"
    store, created = startup_key_store(env_spec=None, key_file=absent, auth_disabled=True)
    assert (len(store), created) == (0, None)
    assert not absent.exists()
    assert os.listdir(tmp_path) == ["api_keys.json"]
