"""Secrets never reach a log line or the start-up output: URL passwords, tokens and API keys become ***."""

from __future__ import annotations

import io
import logging
import re
import secrets
from collections.abc import Iterator

import pytest
from tests.unit.test_regex_growth import MAX_GROWTH, Attack, _growth

from ticket_triage import redaction
from ticket_triage.config import Settings
from ticket_triage.redaction import LOG_FILTER, install_log_redaction, redact, redact_url
from ticket_triage.serving.server import cache_line

SECRETS = ("s3cret", "pw", "p@ss", "tok3n", "hunter2")


@pytest.fixture
def redacting() -> Iterator[None]:
    """Log redaction installed for one test, then the process's logging as it was."""
    factory = logging.getLogRecordFactory()
    root = logging.getLogger()
    handlers = list(root.handlers)
    install_log_redaction()
    yield
    logging.setLogRecordFactory(factory)
    root.removeFilter(LOG_FILTER)
    for handler in handlers:
        handler.removeFilter(LOG_FILTER)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("connect postgresql://u:pw@h/db failed", "connect postgresql://u:***@h/db failed"),
        ("rediss://default:p@ss@cache.example:6380", "rediss://default:***@cache.example:6380"),
        ("URL: REDIS://:s3cret@cache, retrying", "URL: REDIS://:***@cache, retrying"),
        ("redis://cache:6379/0?password=s3cret&db=2", "redis://cache:6379/0?password=***&db=2"),
        ("token=tok3n api_key: 'hunter2'", "token=*** api_key: '***'"),
        ("Authorization: Bearer tok3n.x.y", "Authorization: Bearer ***"),
        ("headers {'x-api-key': 'hunter2'}", "headers {'x-api-key': '***'}"),
        (
            "plain redis://cache:6379/0 and https://example.com/a:b@c",
            "plain redis://cache:6379/0 and https://example.com/a:b@c",
        ),
        ("the user is down, order #12345", "the user is down, order #12345"),
    ],
)
def test_redact_masks_credentials_and_leaves_other_text(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_masks_the_services_api_keys_but_not_digests() -> None:
    kinds = (str.isupper, str.islower, str.isdigit)
    key = secrets.token_urlsafe(32)
    while not all(any(kind(c) for c in key) for kind in kinds):  # the rule: all three kinds of character
        key = secrets.token_urlsafe(32)
    digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert redact(f"key {key} rejected; cache key triage:v2:m:{digest}") == (
        f"key *** rejected; cache key triage:v2:m:{digest}"
    )


def test_redact_url_keeps_the_user_and_hides_both_password_places() -> None:
    url = "redis://triage:s3cret@127.0.0.1:6379/2?password=0th3r&db=2"
    assert redact_url(url) == "redis://triage:***@127.0.0.1:6379/2?password=***&db=2"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_log_record_comes_out_without_the_secrets(
    redacting: None, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("ticket_triage.test_redaction")
    with caplog.at_level(logging.INFO, logger="ticket_triage.test_redaction"):
        log.info("cache at %s, reviews in %s", "redis://:s3cret@host:6379/0", "postgresql://u:pw@h/db")
        literal = "literal redis://:s3cret@host and postgresql://u:pw@h/db"
        log.warning(literal)  # the secret in the template itself
        log.error("template password=%s", "hunter2")  # masking the template alone would break this record
        try:
            raise ConnectionError("cannot reach postgresql://u:pw@h/db")
        except ConnectionError:
            log.exception("writer failed")

    assert len(caplog.records) == 4
    assert "redis://:***@host:6379/0" in caplog.text and "postgresql://u:***@h/db" in caplog.text
    assert "password=***" in caplog.text
    for secret in SECRETS:
        assert f":{secret}@" not in caplog.text and f"={secret}" not in caplog.text
    first = caplog.records[0]
    assert isinstance(first.args, tuple) and len(first.args) == 2  # arguments stay arguments where they can


def test_a_logger_with_its_own_handler_that_does_not_propagate_is_redacted_too(redacting: None) -> None:
    """uvicorn's loggers are set up like this, and a filter on the root logger alone never sees them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test_redaction.uvicorn_like")
    log.propagate, log.level = False, logging.INFO
    log.addHandler(handler)
    try:
        log.info("Started with %s", "redis://:s3cret@host:6379/0")
    finally:
        log.removeHandler(handler)
    assert stream.getvalue() == "INFO Started with redis://:***@host:6379/0\n"


def test_install_is_idempotent(redacting: None) -> None:
    factory = logging.getLogRecordFactory()
    install_log_redaction()
    assert logging.getLogRecordFactory() is factory
    assert logging.getLogger().filters.count(LOG_FILTER) == 1


def test_the_server_start_up_line_shows_no_password() -> None:
    line = cache_line(Settings(redis_url="redis://:s3cret@127.0.0.1:6379/0"))
    assert line == "  cache:     redis redis://:***@127.0.0.1:6379/0"
    assert cache_line(Settings(redis_url=None)) == "  cache:     in-process"


@pytest.mark.parametrize(
    "pattern",
    [redaction._URL_CREDENTIALS, redaction._SECRET_OPTION, redaction._SECRET_HEADER, redaction._API_KEY],
)
def test_redaction_patterns_grow_linearly(pattern: re.Pattern[str]) -> None:
    """A log line can carry attacker-chosen text (an exception quoting a request)."""
    attacks = (
        Attack("", "a"),
        Attack("", "a://"),
        Attack("a://:", "x:"),
        Attack("", "x://u:"),
        Attack("password", " ", "x"),
        Attack("authorization: bearer", " "),
        Attack("", "Ab1-"),
        Attack("", "a@"),
    )
    for attack in attacks:
        _, _, ratio = _growth(pattern, attack)
        assert ratio < MAX_GROWTH, f"{attack}: {ratio:.1f}x"
