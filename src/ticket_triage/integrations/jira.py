"""Jira (and Jira Service Management, which uses Jira Cloud's webhooks): issue created/updated events.

The body (developer.atlassian.com/cloud/jira/platform/webhooks/, "Example callback for an issue-related
event")::

    {"timestamp": 1764497700000, "webhookEvent": "jira:issue_created",
     "issue_event_type_name": "issue_created", "user": {...},
     "issue": {"id": "10002", "self": "...", "key": "SD-12",
               "fields": {"summary": "...", "description": "text" or {"type": "doc", ...},
                          "priority": {"name": "High", ...}, "status": {"name": "Open", ...},
                          "issuetype": {"name": "Incident", ...}, "project": {"key": "SD", ...},
                          "reporter": {"accountId": "...", ...},
                          "created": "2026-11-30T10:15:00.000+0000", "updated": "...", ...}},
     "changelog": {...}}

The ticket id is the issue key ("SD-12"). ``jira:issue_created`` is a creation and ``jira:issue_updated``
an update; other events are refused by name, so a webhook subscribed to more than issue events is noticed.
A body that is the issue itself (``{"key": ..., "fields": ...}``, the REST shape) or lacks
``webhookEvent`` is read too, its event from ``issue_event_type_name`` or from equal created and updated
times. A description in Atlassian Document Format is flattened to text, paragraphs apart.

Authentication, either of:

- an admin webhook registered with a secret signs the body (same page, "Secure admin webhooks"):
  ``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>``. When that header is present it alone
  decides;
- Jira Automation's "Send web request" action cannot sign but can add headers
  (support.atlassian.com/cloud-automation/docs/jira-automation-actions/): it sends
  ``Authorization: Bearer <secret>``, with the web request body "Issue data (Jira format)" or a custom body
  of the shape above.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from ticket_triage.integrations.base import (
    Event,
    InboundTicket,
    PayloadError,
    SignatureError,
    as_object,
    bearer,
    child,
    event_by_times,
    header,
    iso,
    join,
    lower_text,
    require_text,
    same,
    string,
    text,
    ticket_fields,
    ticket_id,
    timestamp,
    urgency,
)

SYSTEM = "jira"
SIGNATURE_HEADER = "X-Hub-Signature"
EVENTS: dict[str, Event] = {"jira:issue_created": "created", "jira:issue_updated": "updated"}

#: ADF nodes that sit inside a line; any other node is a block, set apart by a blank line.
_INLINE = frozenset({"text", "hardBreak", "mention", "emoji", "inlineCard", "status", "date", "mediaInline"})
#: Deeper ADF than this is not a real description (and would exhaust the stack).
_MAX_DEPTH = 64


class JiraAdapter:
    system = SYSTEM

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
        signature = header(headers, SIGNATURE_HEADER)
        if signature is not None:
            method, _, given = signature.strip().partition("=")
            if method.lower() != "sha256" or not given:
                raise SignatureError(f"the {SIGNATURE_HEADER} is not of the form sha256=<hex digest>")
            expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            if not same(expected, given.lower()):
                raise SignatureError(f"the {SIGNATURE_HEADER} does not match the body and the webhook secret")
            return
        token = bearer(headers)
        if token is None:
            raise SignatureError(f"the request has neither {SIGNATURE_HEADER} nor Authorization: Bearer")
        if not same(secret, token):
            raise SignatureError("the bearer token does not match the configured secret")

    def parse(self, payload: object) -> InboundTicket:
        root = as_object(payload, "body")
        if "issue" in root:
            issue, path = child(root, "issue", ""), "issue"
        elif "key" in root and "fields" in root:
            issue, path = root, ""
        else:
            raise PayloadError("issue", "issue must be a JSON object (the issue the event is about)")
        key = ticket_id(issue.get("key"), join(path, "key"))
        fields = child(issue, "fields", path)
        fpath = join(path, "fields")
        subject = string(fields.get("summary"), f"{fpath}.summary")
        description = _description(fields.get("description"), f"{fpath}.description")
        require_text(subject, description, f"{fpath}.summary", f"{fpath}.description")
        created = timestamp(fields.get("created"), f"{fpath}.created")
        updated = timestamp(fields.get("updated"), f"{fpath}.updated")
        priority = text(fields.get("priority"))
        reporter = fields.get("reporter")
        project = fields.get("project")
        metadata = {
            "issue_id": text(issue.get("id")),
            "project": text(project.get("key")) if isinstance(project, dict) else None,
            "issue_type": text(fields.get("issuetype")),
            "status": text(fields.get("status")),
            "priority": priority,
            "reporter": text(reporter.get("accountId")) if isinstance(reporter, dict) else None,
            "jira_event": text(root.get("issue_event_type_name")),
        }
        values = ticket_fields(
            ticket_id=key,
            subject=subject,
            description=description,
            created_at=iso(created),
            urgency=urgency(priority),
            metadata=metadata,
        )
        return InboundTicket(SYSTEM, key, _event(root, created, updated), values, iso(updated))


def _event(root: Mapping[str, object], created: object, updated: object) -> Event:
    name = root.get("webhookEvent")
    if name is not None:
        if not isinstance(name, str) or name not in EVENTS:
            raise PayloadError(
                "webhookEvent",
                "webhookEvent is not jira:issue_created or jira:issue_updated; subscribe"
                " the webhook to issue created and updated events only",
            )
        return EVENTS[name]
    kind = lower_text(root.get("issue_event_type_name"))
    if kind is not None:
        return "created" if kind == "issue_created" else "updated"
    return event_by_times(created, updated) or "created"


def _description(value: object, path: str) -> str | None:
    """Jira sends a description as text (webhooks, REST v2) or as an ADF document (REST v3)."""
    if isinstance(value, dict):
        flat = adf_text(value, path)
        return flat if flat.strip() else None
    return string(value, path)


def adf_text(node: object, path: str, depth: int = 0) -> str:
    """Plain text of an Atlassian Document Format node: text nodes joined, blocks a blank line apart,
    list items one a line."""
    if depth > _MAX_DEPTH:
        raise PayloadError(path, f"{path} is nested deeper than {_MAX_DEPTH} levels")
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    raw_attrs = node.get("attrs")
    attrs: Mapping[str, object] = raw_attrs if isinstance(raw_attrs, dict) else {}
    if kind == "text":
        return str(node.get("text") or "")
    if kind == "hardBreak":
        return "\n"
    if kind in {"mention", "emoji", "status"}:
        return str(attrs.get("text") or attrs.get("shortName") or "")
    if kind in {"inlineCard", "blockCard", "embedCard"}:
        return str(attrs.get("url") or "")
    children = node.get("content")
    if not isinstance(children, list):
        return ""
    parts = [adf_text(c, path, depth + 1) for c in children]
    if all(isinstance(c, dict) and c.get("type") in _INLINE for c in children):
        return "".join(parts)
    if kind in {"bulletList", "orderedList"}:
        return "\n".join(p.strip() for p in parts if p.strip())
    return "\n\n".join(p.strip("\n") for p in parts if p.strip())


ADAPTER = JiraAdapter()
