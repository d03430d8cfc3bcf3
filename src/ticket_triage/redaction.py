"""One helper that keeps secrets out of what the service prints and logs.

A Redis or database URL carries its password (``redis://:s3cret@host``), exceptions quote URLs and
headers, and anything that reaches a log file is read by more people than the secret was meant for.
``redact`` replaces URL passwords, ``password=``/``token=``-style options, ``Authorization`` and
API-key header values, and free-standing API keys with ``***``; ``install_log_redaction`` applies it
to every log record of the process, whichever logger or handler the record takes.

Every pattern here runs in linear time (a log line can hold attacker-chosen text).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# scheme://user:password@ — a scheme starts only where its run of scheme characters starts (a start
# inside "aaaa..." would rescan the run); the password runs to the authority's last "@", so one holding
# an unencoded "@" is still hidden whole.
_URL_CREDENTIALS = re.compile(
    r"(?<![a-z0-9+.-])(?P<head>[a-z][a-z0-9+.-]*+://[^\s:/@]*+:)[^\s/]*@", re.IGNORECASE
)
# password=..., token: ..., api_key=... in query strings, key=value logs and JSON-ish text.
_SECRET_OPTION = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|token|access_token|refresh_token|api[_-]?key|apikey"
    r"|signing[_-]?key)[\"']?\s*+[=:]\s*+[\"']?)(?P<value>[^\s&;,\"'}]++)",
    re.IGNORECASE,
)
# Authorization: Bearer xyz / X-API-Key: xyz (header dumps, exception texts).
_SECRET_HEADER = re.compile(
    r"(?P<head>\b(?:authorization|proxy-authorization|x-api-key)[\"']?\s*+[:=]\s*+[\"']?"
    r"(?:(?:bearer|basic|token)\s++)?)(?P<value>[^\s\"',}]++)",
    re.IGNORECASE,
)
# The service's API keys are ``secrets.token_urlsafe(32)``: 43 URL-safe characters. A word of exactly
# that length mixing upper case, lower case and digits is taken for one (hex digests are 64 long).
_API_KEY = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


def _mask_key(match: re.Match[str]) -> str:
    word = match.group(0)
    kinds = (str.isupper, str.islower, str.isdigit)
    return MASK if all(any(kind(c) for c in word) for kind in kinds) else word


def redact(text: str) -> str:
    """``text`` with every credential this module recognises replaced by ``***``."""
    if not text:
        return text
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    text = _SECRET_HEADER.sub(lambda m: f"{m.group('head')}{MASK}", text)
    text = _SECRET_OPTION.sub(lambda m: f"{m.group('head')}{MASK}", text)
    return _API_KEY.sub(_mask_key, text)


def redact_url(url: str) -> str:
    """The URL with any password (in the userinfo or a ``password=`` query option) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            host = netloc.rpartition("@")[2]
            netloc = f"{parts.username or ''}:{MASK}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, MASK if k.lower() == "password" else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<unparsable url>"


def _redact_arg(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, arguments, traceback and stack text without secrets; drops nothing.

    Arguments stay arguments where redacting them one by one is enough (formatters such as uvicorn's
    access log unpack them); a secret split between the template and an argument collapses the record
    to its redacted message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # Redaction must never cost a log line; a record that cannot be formatted is the handler's to report.
        with contextlib.suppress(Exception):
            redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> None:
    """Redact ``record`` in place (see ``RedactingFilter``).

    The template itself is never edited on its own: masking a "password=%s" template would leave its
    argument without a placeholder and break the record.
    """
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _redact_arg(v) for k, v in record.args.items()}
    message = record.getMessage()
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


LOG_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Redact every log record of this process from now on; safe to call more than once.

    A filter on the root logger alone would miss records of child loggers (logger filters do not see
    propagated records) and of loggers that do not propagate (uvicorn's), so the filter also goes on
    the root's handlers, and the record factory runs it on every record as it is made, which covers
    handlers configured later (uvicorn's logging set-up in each worker).
    """
    root = logging.getLogger()
    if LOG_FILTER not in root.filters:
        root.addFilter(LOG_FILTER)
    for handler in root.handlers:
        if LOG_FILTER not in handler.filters:
            handler.addFilter(LOG_FILTER)
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts_secrets", False):
        return
    logging.setLogRecordFactory(_redacting_factory(current))


def _redacting_factory(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        LOG_FILTER.filter(record)
        return record

    factory.redacts_secrets = True  # type: ignore[attr-defined]
    return factory
