"""What every helpdesk adapter shares: its errors, its result, its interface, and small helpers.

An adapter checks a delivery the way its system authenticates it (:meth:`Adapter.verify`) and turns the
system's own JSON into keyword arguments for :class:`ticket_triage.serving.schemas.Ticket`
(:meth:`Adapter.parse`). Validation of those arguments (text rules, time range, length limits) stays with
the route, so one rule set holds for every way a ticket arrives.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Literal, Protocol

Event = Literal["created", "updated"]


class WebhookError(Exception):
    """A delivery refused; ``reason`` is shown to the caller and logged, so it never holds the body or
    the secret."""

    status: int = 422

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureError(WebhookError):
    """Not from the helpdesk as far as we can tell: unsigned, wrongly signed, stale or a wrong token."""

    status = 401


class PayloadError(WebhookError):
    """Authentic but not a ticket we can read; ``field`` is the JSON path that is wrong or missing."""

    status = 422

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


@dataclass(frozen=True)
class InboundTicket:
    """One ticket version as the helpdesk sent it. ``fields`` are ``Ticket`` keyword arguments (only
    those the payload had); ``updated_at`` is the helpdesk's own update time, in UTC ISO 8601 when it
    parses, so two deliveries of one version compare equal."""

    system: str
    ticket_id: str
    event: Event
    fields: dict[str, object] = field(default_factory=dict)
    updated_at: str | None = None


class Adapter(Protocol):
    """One helpdesk system: how its deliveries are authenticated and what its payload looks like."""

    system: str

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
        """Return if the raw ``body`` came from the helpdesk holding ``secret``; else SignatureError."""
        ...

    def parse(self, payload: object) -> InboundTicket:
        """The ticket in the decoded JSON ``payload``; PayloadError names the first field that is wrong."""
        ...


# --- authentication ------------------------------------------------------------------------------------


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The header's value whatever its case: Starlette's headers ignore case, a plain dict does not."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, item in headers.items():
        if key.lower() == wanted:
            return item
    return None


def same(expected: str, given: str) -> bool:
    """Constant-time equality, so response timing cannot reveal how much of a guess was right."""
    return hmac.compare_digest(expected.encode("utf-8", "replace"), given.encode("utf-8", "replace"))


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme in any case), else None."""
    value = header(headers, "Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


# --- payload reading -----------------------------------------------------------------------------------


def as_object(value: object, path: str) -> dict[str, object]:
    """``value`` as a JSON object, or a PayloadError naming ``path``."""
    if not isinstance(value, dict):
        what = "missing" if value is None else f"a JSON {_json_type(value)}"
        raise PayloadError(path, f"{path} must be a JSON object, got {what}")
    return value


def child(parent: Mapping[str, object], key: str, path: str) -> dict[str, object]:
    """The object under ``key`` of ``parent`` (which sits at ``path``)."""
    return as_object(parent.get(key), join(path, key))


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def text(value: object) -> str | None:
    """A string, number or name-bearing object as text; None for missing, empty and null-ish values.

    Helpdesks send a related record either as its name or as an object with one (Zammad's
    ``"group": {"name": ...}``), and an unfilled placeholder renders as an empty string.
    """
    if isinstance(value, dict):
        value = value.get("name")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        rendered = str(value).strip()
        return None if rendered in _UNSET else rendered
    return None


#: How an unset value renders in placeholders and payloads (Zendesk and Zammad show "-").
_UNSET = frozenset({"", "-"})


def lower_text(value: object) -> str | None:
    """:func:`text` in lower case, for enum-like values each system spells its own way ("OPEN", "Open")."""
    rendered = text(value)
    return None if rendered is None else rendered.lower()


def string(value: object, path: str) -> str | None:
    """A free-text field as sent (long texts are not cut: the route checks limits); None when absent or
    blank; PayloadError when it is not a string."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(path, f"{path} must be a string, got a JSON {_json_type(value)}")
    return value if value.strip() else None


def event_word(value: object, path: str) -> Event | None:
    """An explicit created/updated marker the recommended bodies carry; None when absent."""
    rendered = text(value)
    if rendered is None:
        return None
    word = rendered.lower()
    if word in {"created", "create", "new"}:
        return "created"
    if word in {"updated", "update", "changed"}:
        return "updated"
    raise PayloadError(path, f'{path} must be "created" or "updated"')


def event_by_times(created: object, updated: object) -> Event | None:
    """A ticket never changed since creation has equal times; None when either time is missing."""
    if created is None or updated is None:
        return None
    return "created" if created == updated else "updated"


def ticket_id(value: object, path: str) -> str:
    """The helpdesk's ticket id as a string: ids are compared as text everywhere downstream."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    what = "missing" if value is None else f"a JSON {_json_type(value)}"
    if isinstance(value, str):
        what = "an empty string"
    raise PayloadError(path, f"{path} must be the ticket id (a string or an integer), got {what}")


def timestamp(value: object, path: str) -> datetime | None:
    """An ISO 8601 (or RFC 2822) time; None when absent; PayloadError when present but unreadable.

    ``datetime.fromisoformat`` reads Jira's ``+0000`` offsets, ``Z`` and nanosecond fractions (3.11+).
    """
    rendered = text(value)
    if rendered is None:
        return None
    try:
        parsed = datetime.fromisoformat(rendered)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(rendered)
        except (TypeError, ValueError, IndexError):
            raise PayloadError(path, f"{path} is not an ISO 8601 time") from None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def require_text(subject: str | None, description: str | None, subject_path: str, body_path: str) -> None:
    """The model needs words: a ticket with neither a subject nor a description is refused by name."""
    if not (subject or "").strip() and not (description or "").strip():
        raise PayloadError(
            f"{subject_path}, {body_path}",
            f"{subject_path} and {body_path} are both missing or empty; the ticket has no text to classify",
        )


def ticket_fields(**values: object) -> dict[str, object]:
    """``Ticket`` keyword arguments without the ones the payload did not have (they keep their defaults)."""
    fields = {key: value for key, value in values.items() if value is not None}
    metadata = fields.get("metadata")
    if isinstance(metadata, dict):
        kept = {key: item for key, item in metadata.items() if item is not None and item != ""}
        if kept:
            fields["metadata"] = kept
        else:
            del fields["metadata"]
    return fields


def urgency(priority: str | None) -> str | None:
    """The helpdesk's priority name as the declared urgency: lower case, a leading rank dropped
    (Zammad's ``"2 normal"`` -> ``"normal"``), so the model's urgency levels recognise it."""
    if priority is None:
        return None
    word = re.sub(r"^\d+\s+", "", priority.strip()).lower()
    return word or None


# --- channels ------------------------------------------------------------------------------------------

#: Source names the systems use (normalised: lower case, words joined by "_"), as one short word.
CHANNELS: dict[str, str] = {
    **dict.fromkeys(("email", "mail", "e_mail", "outbound_email", "outbound"), "email"),
    **dict.fromkeys(("web", "web_form", "webform", "portal", "help_center", "web_widget"), "web"),
    **dict.fromkeys(("feedback_widget", "widget", "form"), "web"),
    **dict.fromkeys(("api", "web_service", "any_channel", "integration"), "api"),
    **dict.fromkeys(("phone", "voice", "voicemail", "phone_call", "call", "fax"), "phone"),
    **dict.fromkeys(("phone_call_incoming", "phone_call_outgoing"), "phone"),
    **dict.fromkeys(("chat", "live_chat", "native_messaging", "messaging", "chat_transcript"), "chat"),
    **dict.fromkeys(("whatsapp", "whatsapp_message", "telegram", "telegram_personal_message"), "chat"),
    **dict.fromkeys(("sms", "text_message"), "sms"),
    **dict.fromkeys(("mobile", "mobile_sdk", "mobihelp"), "mobile"),
    **dict.fromkeys(("twitter", "facebook", "instagram", "instagram_dm", "social"), "social"),
    **dict.fromkeys(("twitter_status", "twitter_direct_message", "facebook_feed_post"), "social"),
    **dict.fromkeys(("facebook_feed_comment", "facebook_post", "facebook_message"), "social"),
}
_WORD = re.compile(r"[^a-z0-9]+")
_MAX_CHANNEL = 20


def channel(value: object) -> str | None:
    """The ticket's source as one short lowercase word (email, web, api, phone, chat, ...).

    A source the table does not know is kept in its normalised form when short, else "other": the
    model treats a value it never saw as unknown, so a new source cannot break prediction.
    """
    rendered = text(value)
    if rendered is None:
        return None
    key = _WORD.sub("_", rendered.lower()).strip("_")
    if not key:
        return None
    return CHANNELS.get(key) or (key if len(key) <= _MAX_CHANNEL else "other")


# --- HTML ----------------------------------------------------------------------------------------------

_BLOCKS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "fieldset", "figcaption"),
        *("figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main"),
        *("nav", "ol", "p", "pre", "section", "table", "tbody", "thead", "tfoot", "tr", "ul"),
    }
)
_SKIPPED = frozenset({"script", "style", "head", "title", "template"})
_HTML_TAG = re.compile(r"<(?:[a-zA-Z][\w:-]*(?:\s[^<>]*)?/?|/[a-zA-Z][\w:-]*\s*|!--.*?--)>", re.DOTALL)


_LINE, _PARAGRAPH = 1, 2
_PARAGRAPHS = frozenset({"p", "blockquote", "pre", "table", "ul", "ol", "dl"})


class _TextCollector(HTMLParser):
    """Text of an HTML fragment with line breaks where blocks and ``<br>`` end; nothing is fetched.

    Block edges are recorded as break marks, and a run of marks becomes one break (a paragraph if any
    mark in it is one), so ``</div><div>`` is one new line, not two.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str | int] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping += 1
        else:
            self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag != "br":
            self._break(tag)

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            # Line breaks in HTML source are spaces; only tags break lines.
            self.parts.append(re.sub(r"\s+", " ", data))

    def _break(self, tag: str) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append(_PARAGRAPH if tag in _PARAGRAPHS else _LINE)
        elif tag in {"td", "th"}:
            self.parts.append(" ")

    def text(self) -> str:
        out: list[str] = []
        pending = 0
        for part in self.parts:
            if isinstance(part, int):
                pending = max(pending, part)
            elif pending and not part.strip(" "):
                continue  # spacing between two blocks is no text
            else:
                if pending:
                    out.append("\n" * pending)
                    pending = 0
                out.append(part)
        return "".join(out)


def looks_like_html(value: str) -> bool:
    return _HTML_TAG.search(value) is not None


def html_to_text(value: str) -> str:
    """Readable text of an HTML description: tags dropped, entities decoded, paragraphs kept apart.

    The stdlib parser is enough here (no HTML library is installed); it never raises on broken markup.
    """
    collector = _TextCollector()
    collector.feed(value)
    collector.close()
    lines = [line.strip() for line in collector.text().split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
