"""API keys with roles: parsing, hashed storage, constant-time lookup and the FastAPI dependency.

Keys come from a local JSON key file (hashes only) and from ``TRIAGE_API_KEYS`` (``ROLE:KEY`` or
``NAME:ROLE:KEY``). A presented key is never logged, echoed in an error, or kept beyond the request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

logger = logging.getLogger(__name__)

KEY_FILE_FORMAT = 1
MIN_KEY_CHARS = 8
#: Names identify a key (and, for reviewers, a person) in logs and review records.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}")
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_EXPECTED_HEADERS = "send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


class Role(StrEnum):
    PREDICT = "predict"
    REVIEW = "review"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who made the request: the key's name (a reviewer's identity for review keys) and its role."""

    name: str
    role: Role


class KeySpecError(ValueError):
    """A bad ``TRIAGE_API_KEYS`` entry or key file; the message names the entry, never its key."""


class AuthError(Exception):
    """A request without a usable key (401) or with a key of the wrong role (403)."""

    def __init__(self, status_code: int, message: str) -> None:
        if status_code not in (401, 403):
            raise ValueError(f"AuthError is 401 or 403, not {status_code}")
        super().__init__(message)
        self.status_code = status_code
        self.message = message

    @property
    def code(self) -> str:
        return "unauthorized" if self.status_code == 401 else "forbidden"

    @property
    def headers(self) -> dict[str, str]:
        # HTTP requires a challenge on 401; a 403 needs none.
        return {"WWW-Authenticate": 'Bearer realm="ticket-triage"'} if self.status_code == 401 else {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


# --- keys and their hashes --------------------------------------------------------------------------


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a key.

    A fast unsalted hash is adequate because keys are long random tokens (``token_urlsafe(32)``, 256 bits),
    not passwords: there is no dictionary to try, so slow or salted hashing would add latency to every
    request without adding strength. It protects the keys at rest: whoever reads the key file (a backup,
    a support bundle) learns no key that the service would accept.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _role(text: str) -> Role | None:
    try:
        return Role(text.strip().lower())
    except ValueError:
        return None


def _roles_list() -> str:
    return ", ".join(r.value for r in Role)


def parse_key_spec(text: str) -> list[tuple[str, Role, str]]:
    """Parse ``ROLE:KEY`` / ``NAME:ROLE:KEY`` entries, comma-separated, into ``(name, role, key)``.

    With two fields the role doubles as the name. When there are three or more fields and the second is a
    role, the entry is ``NAME:ROLE:KEY``; otherwise the first must be the role and the rest is the key.
    Empty entries are skipped; errors name the entry by its position (counting from 1) and never show it.
    """
    parsed: list[tuple[str, Role, str]] = []
    for position, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        where = f"TRIAGE_API_KEYS entry {position}"
        fields = entry.split(":")
        if len(fields) < 2:
            raise KeySpecError(f"{where}: expected ROLE:KEY or NAME:ROLE:KEY")
        middle = _role(fields[1]) if len(fields) >= 3 else None
        first = _role(fields[0])
        if middle is not None:
            name, role, key = fields[0].strip(), middle, ":".join(fields[2:]).strip()
        elif first is not None:
            name, role, key = first.value, first, ":".join(fields[1:]).strip()
        else:
            raise KeySpecError(
                f"{where}: unknown role (expected one of {_roles_list()}, as ROLE:KEY or NAME:ROLE:KEY)"
            )
        if not _NAME_RE.fullmatch(name):
            raise KeySpecError(
                f"{where}: invalid name (letters, digits and . _ @ + -, at most 64 characters)"
            )
        if not key:
            raise KeySpecError(f"{where} ({name}): empty key")
        if len(key) < MIN_KEY_CHARS:
            raise KeySpecError(f"{where} ({name}): key too short (at least {MIN_KEY_CHARS} characters)")
        if any(ch.isspace() for ch in key):
            raise KeySpecError(f"{where} ({name}): key contains whitespace")
        parsed.append((name, role, key))
    return parsed


@dataclass(frozen=True)
class KeyEntry:
    name: str
    role: Role
    digest: str


class KeyStore:
    """The accepted keys, as hashes; looks a presented key up without revealing which entry matched."""

    def __init__(self, entries: Sequence[KeyEntry]) -> None:
        kept: list[KeyEntry] = []
        by_digest: dict[str, KeyEntry] = {}
        for entry in entries:
            digest = entry.digest.lower()
            if not _DIGEST_RE.fullmatch(digest):
                raise KeySpecError(f"key {entry.name!r}: digest is not a SHA-256 hex string")
            entry = KeyEntry(entry.name, Role(entry.role), digest)
            seen = by_digest.get(digest)
            if seen == entry:
                continue  # the same key listed in both the file and the environment
            if seen is not None:
                # One key with two identities would make the principal depend on list order.
                raise KeySpecError(
                    f"key {entry.name!r} ({entry.role}) is the same key as {seen.name!r} ({seen.role})"
                )
            by_digest[digest] = entry
            kept.append(entry)
        self._entries = tuple(kept)
        self._digests = tuple(e.digest.encode("ascii") for e in kept)

    @classmethod
    def load(cls, *, env_spec: str | None, key_file: Path | None) -> KeyStore:
        """Keys from the key file (if it exists) plus those in the ``TRIAGE_API_KEYS`` spec."""
        entries: list[KeyEntry] = []
        if key_file is not None:
            entries.extend(_read_key_file(key_file, missing_ok=True))
        if env_spec:
            entries.extend(KeyEntry(n, r, hash_key(k)) for n, r, k in parse_key_spec(env_spec))
        return cls(entries)

    def authenticate(self, presented: str) -> Principal | None:
        """The principal whose key this is, or None.

        The presented key is hashed and compared with every entry (``hmac.compare_digest``, no early exit),
        so response time reveals neither how much of a key was right nor which entry matched.
        """
        digest = hash_key(presented).encode("ascii")
        match: KeyEntry | None = None
        for entry, stored in zip(self._entries, self._digests, strict=True):
            if hmac.compare_digest(digest, stored):
                match = entry
        return None if match is None else Principal(match.name, match.role)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[tuple[str, Role]]:
        return [(e.name, e.role) for e in self._entries]


# --- the key file -----------------------------------------------------------------------------------


def first_run_path(key_file: Path) -> Path:
    """Where :func:`ensure_key_file` writes the new plaintext keys, once."""
    return key_file.with_name(f"{key_file.stem}.first-run.txt")


def _read_key_file(path: Path, *, missing_ok: bool) -> list[KeyEntry]:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return []
        raise
    except OSError as exc:
        raise KeySpecError(f"key file {path}: cannot read it ({exc.strerror or exc})") from exc
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        # Whoever can write the file can add a hash of their own and grant themselves admin.
        raise KeySpecError(f"key file {path}: writable by group or others; run 'chmod 600 {path}'")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeySpecError(f"key file {path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(document, dict) or document.get("format") != KEY_FILE_FORMAT:
        raise KeySpecError(f'key file {path}: expected an object with "format": {KEY_FILE_FORMAT}')
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise KeySpecError(f'key file {path}: "keys" must be a list')
    entries = []
    for position, item in enumerate(keys, start=1):
        where = f"key file {path}: entry {position}"
        if not isinstance(item, dict):
            raise KeySpecError(f"{where}: expected an object with name, role and sha256")
        name, role, digest = item.get("name"), item.get("role"), item.get("sha256")
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise KeySpecError(f"{where}: missing or invalid name")
        parsed_role = _role(role) if isinstance(role, str) else None
        if parsed_role is None:
            raise KeySpecError(f"{where} ({name}): unknown role (expected one of {_roles_list()})")
        if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest.lower()):
            raise KeySpecError(f"{where} ({name}): sha256 must be 64 hex characters")
        entries.append(KeyEntry(name, parsed_role, digest.lower()))
    return entries


def _record(name: str, role: Role, key: str) -> dict[str, str]:
    return {
        "name": name,
        "role": role.value,
        "sha256": hash_key(key),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _write_private_temp(directory: Path, prefix: str, text: str) -> Path:
    """Write ``text`` to a new 0600 file in ``directory`` (same file system, so it can be linked/renamed)."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _key_document(records: list[dict[str, str]]) -> str:
    return json.dumps({"format": KEY_FILE_FORMAT, "keys": records}, indent=2) + "\n"


def ensure_key_file(path: Path) -> dict[Role, str] | None:
    """Create the key file with one new key per role if it does not exist; None if it already does.

    The file holds only hashes; the plaintext keys go once to :func:`first_run_path` (mode 0600) for the
    operator to copy and delete. The key file appears atomically (hard link of a finished temp file), so
    two workers starting together never see a half-written file and only one of them creates keys.
    """
    if path.exists():
        return None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = {role: secrets.token_urlsafe(32) for role in Role}
    records = [_record(role.value, role, key) for role, key in keys.items()]
    temp = _write_private_temp(path.parent, f".{path.name}.", _key_document(records))
    try:
        os.link(temp, path)
    except FileExistsError:
        return None
    finally:
        temp.unlink(missing_ok=True)

    plain = first_run_path(path)
    lines = [
        f"# The service reads only the hashes in {path.name}; copy these keys to where they are needed, "
        "then delete this file.",
        *(f"{role.value}:{key}" for role, key in keys.items()),
    ]
    try:
        temp = _write_private_temp(path.parent, f".{plain.name}.", "\n".join(lines) + "\n")
        os.replace(temp, plain)  # replaces a stale file from an earlier key file, whose keys are gone
    except BaseException:
        path.unlink(missing_ok=True)  # keys nobody can read are useless: let the next start retry
        raise
    logger.warning("created API key file %s; the new keys are in %s (delete it after copying)", path, plain)
    return keys


def add_key(path: Path, name: str, role: Role) -> str:
    """Add a new key named ``name`` to the key file (created if missing) and return it in plaintext.

    Names are unique in the file, so a reviewer's identity is never ambiguous.
    """
    role = Role(role)
    if not _NAME_RE.fullmatch(name):
        raise KeySpecError("invalid name (letters, digits and . _ @ + -, at most 64 characters)")
    existing = _read_key_file(path, missing_ok=True)
    if any(entry.name == name for entry in existing):
        raise KeySpecError(f"key file {path}: a key named {name!r} already exists")
    records: list[dict[str, Any]] = []
    if path.exists():
        records = json.loads(path.read_text(encoding="utf-8"))["keys"]  # validated above; keeps created_at
    key = secrets.token_urlsafe(32)
    records.append(_record(name, role, key))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = _write_private_temp(path.parent, f".{path.name}.", _key_document(records))
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return key


def startup_key_store(
    *, env_spec: str | None, key_file: Path, auth_disabled: bool, create_if_missing: bool = False
) -> tuple[KeyStore, dict[Role, str] | None]:
    """The key store the service starts with, and the keys created on this first start (if any).

    With ``create_if_missing`` (what ``make run`` asks for), a key file is created only when no keys come
    from the environment and auth is enabled, so configuring ``TRIAGE_API_KEYS`` never leaves unused
    admin keys on disk. With no keys at all, start-up is refused unless auth is disabled for development.
    """
    created = None
    if create_if_missing and not auth_disabled and not (env_spec and parse_key_spec(env_spec)):
        created = ensure_key_file(key_file)
    store = KeyStore.load(env_spec=env_spec, key_file=key_file)
    if len(store) == 0 and not auth_disabled:
        raise KeySpecError(
            f"no API keys configured: set TRIAGE_API_KEYS, add keys to {key_file}, "
            "or set TRIAGE_AUTH_DISABLED=true for development"
        )
    return store, created


# --- requests ---------------------------------------------------------------------------------------


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request presents, from ``Authorization: Bearer <key>`` or ``X-API-Key``; None if neither.

    A present but malformed Authorization header, or two different keys, is a 401 rather than being
    ignored, so a client with a broken header learns why instead of getting a puzzling "missing key".
    """
    header_key = (x_api_key or "").strip() or None
    bearer: str | None = None
    if authorization is not None and authorization.strip():
        scheme, _, rest = authorization.strip().partition(" ")
        bearer = rest.strip()
        if scheme.lower() != "bearer" or not bearer:
            raise AuthError(401, f"malformed Authorization header: {_EXPECTED_HEADERS}")
    if bearer and header_key and not hmac.compare_digest(bearer.encode(), header_key.encode()):
        raise AuthError(401, "the Authorization and X-API-Key headers carry different keys; send one")
    return bearer or header_key


# Declared for the OpenAPI document (the "Authorize" button); the headers are parsed by presented_key.
_bearer_scheme = HTTPBearer(auto_error=False, description="API key as `Authorization: Bearer <key>`")
_header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key as `X-API-Key`")


def require_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency that authenticates the request and requires one of ``roles``.

    ADMIN is allowed wherever any role is required, so an operator's key works on every route. Reads
    ``request.app.state.keys`` (a KeyStore) and ``request.app.state.auth_disabled``; with auth disabled
    every request is ``Principal("anonymous", Role.ADMIN)``. The principal is also put on
    ``request.state.principal`` for logging. Raises AuthError: 401 for a missing or unknown key, 403 for a
    key whose role is not allowed.
    """
    if not roles:
        raise ValueError("require_roles needs at least one role")
    allowed = frozenset(Role(r) for r in roles) | {Role.ADMIN}
    wanted = list(dict.fromkeys(Role(r) for r in roles))
    needed = " or ".join(r.value for r in wanted) + ("" if Role.ADMIN in wanted else " (or admin)")

    async def dependency(
        request: Request,
        _bearer: Annotated[Any, Security(_bearer_scheme)],
        _header: Annotated[Any, Security(_header_scheme)],
    ) -> Principal:
        state = request.app.state
        if getattr(state, "auth_disabled", False):
            principal = Principal("anonymous", Role.ADMIN)
        else:
            store = getattr(state, "keys", None)
            if not isinstance(store, KeyStore):
                raise RuntimeError("app.state.keys is not set: the service started without a key store")
            key = presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
            if key is None:
                raise AuthError(401, f"missing API key: {_EXPECTED_HEADERS}")
            found = store.authenticate(key)
            if found is None:
                raise AuthError(401, f"unknown API key: {_EXPECTED_HEADERS}")
            if found.role not in allowed:
                raise AuthError(
                    403, f"this endpoint needs role {needed}; key {found.name!r} has role {found.role.value}"
                )
            principal = found
        request.state.principal = principal
        return principal

    return dependency
