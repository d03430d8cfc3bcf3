"""The wire format of the prediction API: what a caller may send and what it gets back.

Everything a caller sends is checked here, at the edge, against what every store downstream can hold
(SQLite, PostgreSQL, the JSON spool, Redis): a value one of them refuses would otherwise be accepted, fail
later in the background writer and hold up every record queued behind it.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

_SHORT = 200
NOTE_CHARS = 10_000

#: Signed 64-bit, the widest integer column of every store (and of JSONB numbers kept exactly).
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Ticket times (``created_at``) and time filters (``since``) must fall in [EARLIEST_TIME, LATEST_TIME).
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)
TIME_RANGE = "from 1970-01-01T00:00:00Z up to (not including) 2100-01-01T00:00:00Z"

#: Bounds of ``metadata``: nesting depth (the object itself is 1), keys over all levels, and size as
#: compact UTF-8 JSON. Metadata is stored and shown to reviewers, never used to predict: 16 KiB is ample
#: for CRM references and keeps one ticket from growing the database or a review page by megabytes.
METADATA_MAX_DEPTH = 8
METADATA_MAX_KEYS = 256
METADATA_MAX_BYTES = 16 * 1024

# Control characters (Unicode Cc) other than tab, newline and carriage return, and UTF-16 surrogates: a
# lone surrogate cannot be encoded as UTF-8 and PostgreSQL refuses NUL, so neither may enter a store.
_UNSAFE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
#: The same rule for the OpenAPI document (surrogates cannot occur in a UTF-8 JSON document's strings).
TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None: names the first unsafe character and where it is."""
    found = _UNSAFE_TEXT.search(value)
    if found is None:
        return None
    char = found.group()
    kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    return f"contains {kind} (U+{ord(char):04X}) at position {found.start()}; only tab, CR and LF are allowed"


def _plain_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class _TextPattern:
    """Puts :data:`TEXT_PATTERN` in the field's JSON schema, so clients and generators know the rule."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["pattern"] = TEXT_PATTERN
        return schema


#: Free text of any length (the ticket texts' limit is a setting, checked by the route).
PlainText = Annotated[str, AfterValidator(_plain_text), _TextPattern()]
ShortText = Annotated[str, StringConstraints(max_length=_SHORT), AfterValidator(_plain_text), _TextPattern()]
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=_SHORT), AfterValidator(_plain_text), _TextPattern()
]
NoteText = Annotated[
    str, StringConstraints(max_length=NOTE_CHARS), AfterValidator(_plain_text), _TextPattern()
]


def _in_time_range(value: datetime) -> datetime:
    """Times outside the range overflow on conversion to UTC or in the stores; refused by name instead."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    # The year test first: comparing year 1 or 9999 with an offset would itself overflow.
    if (
        not EARLIEST_TIME.year - 1 <= aware.year <= LATEST_TIME.year
        or not EARLIEST_TIME <= aware < LATEST_TIME
    ):
        raise ValueError(f"{value.isoformat()} is out of range; times must be {TIME_RANGE}")
    return value


#: A time in the accepted range; without a zone it is read as UTC.
BoundedTime = Annotated[datetime, AfterValidator(_in_time_range)]


class _Walk:
    """Counts what :func:`_check_metadata` has seen, to stop early on oversized input."""

    def __init__(self) -> None:
        self.keys = 0
        self.nodes = 0


def _metadata_problem(value: Any, path: str, depth: int, walk: _Walk) -> str | None:
    """The first reason ``value`` (at ``path``) cannot be stored, or None. Recursion is bounded by depth."""
    walk.nodes += 1
    if walk.nodes > METADATA_MAX_BYTES:  # every value takes at least one byte: over the size for sure
        return f"over {METADATA_MAX_BYTES} bytes as JSON"
    if isinstance(value, dict | list) and depth > METADATA_MAX_DEPTH:
        return f"{path}: nested deeper than {METADATA_MAX_DEPTH} levels"
    if isinstance(value, dict):
        walk.keys += len(value)
        if walk.keys > METADATA_MAX_KEYS:
            return f"more than {METADATA_MAX_KEYS} keys in all"
        for key, item in value.items():
            where = f"{path}.{key}" if len(key) <= 40 and text_problem(key) is None else f"{path}.<key>"
            if len(key) > _SHORT:
                return f"{where}: key longer than {_SHORT} characters"
            problem = text_problem(key)
            if problem is not None:
                return f"{where}: key {problem}"
            problem = _metadata_problem(item, where, depth + 1, walk)
            if problem is not None:
                return problem
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _metadata_problem(item, f"{path}[{index}]", depth + 1, walk)
            if problem is not None:
                return problem
        return None
    if isinstance(value, str):
        problem = text_problem(value)
        return None if problem is None else f"{path}: {problem}"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return f"{path}: integer out of the signed 64-bit range"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: {value} is not a finite number"
    return f"{path}: not a JSON value"


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    problem = _metadata_problem(value, "metadata", 1, _Walk())
    if problem is None:
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        if size > METADATA_MAX_BYTES:
            problem = f"{size} bytes as JSON, over the limit of {METADATA_MAX_BYTES}"
    if problem is not None:
        raise ValueError(problem)
    return value


Metadata = Annotated[
    dict[str, Any],
    AfterValidator(_check_metadata),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": METADATA_MAX_KEYS,
            "description": f"Any JSON object up to {METADATA_MAX_DEPTH} levels deep, {METADATA_MAX_KEYS} keys"
            f" over all levels and {METADATA_MAX_BYTES} bytes as compact JSON; integers within signed"
            " 64 bits, no NaN or Infinity, text without control characters.",
        }
    ),
]


def _ticket_id(value: object) -> str | int | None:
    """One clear message instead of pydantic's one-per-union-member."""
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) > _SHORT:
            raise ValueError(f"at most {_SHORT} characters")
        return _plain_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError("integer out of the signed 64-bit range")
        return value
    raise ValueError("must be a string or an integer")


TicketId = Annotated[
    str | int | None,
    PlainValidator(_ticket_id),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": _SHORT, "pattern": TEXT_PATTERN},
                {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
                {"type": "null"},
            ]
        }
    ),
]


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are refused so a typo cannot go unseen, and no float
    field may hold NaN or Infinity (no store or JSON encoder downstream can keep them)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


TICKET_EXAMPLE = {
    "ticket_id": "HD-1042",
    "subject": "Printer offline",
    "description": "The printer on floor 2 shows offline since Monday; restarting it did not help.",
    "created_at": "2026-03-03T09:15:00Z",
    "channel": "email",
    "customer_tier": "gold",
    "urgency": "high",
    "language": "en",
    "metadata": {"crm": "X-1"},
}


class Ticket(RequestModel):
    """One ticket as the helpdesk system knows it. Text fields refuse control characters other than tab,
    CR and LF, and lone surrogates."""

    model_config = ConfigDict(str_strip_whitespace=False, json_schema_extra={"examples": [TICKET_EXAMPLE]})

    ticket_id: TicketId = Field(None, description="Copied to the answer; the caller's own ID.")
    subject: PlainText | None = Field(None, description="Ticket subject line.")
    description: PlainText | None = Field(
        None, description="Ticket body. At least one of subject/description."
    )
    created_at: BoundedTime | None = Field(
        None, description=f"ISO 8601 creation time, {TIME_RANGE}; without a zone it is read as UTC."
    )
    channel: ShortText | None = Field(None, examples=["email"])
    customer_tier: ShortText | None = Field(
        None, description="Any value; one the model never saw is treated as unknown."
    )
    urgency: ShortText | None = Field(None, description="Urgency the customer declared.")
    language: ShortText | None = None
    metadata: Metadata | None = Field(None, description="Free-form; stored, never used to predict.")

    @model_validator(mode="after")
    def _needs_text(self) -> Ticket:
        if not (self.subject or "").strip() and not (self.description or "").strip():
            raise ValueError("subject and description are both empty; send at least one of them")
        return self


class BatchRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"tickets": [TICKET_EXAMPLE, {"subject": "VPN drops every hour"}]}]}
    )

    tickets: list[Ticket] = Field(description="Tickets to predict; the answer keeps their order.")


class LabelProbability(BaseModel):
    label: str
    probability: float


class EvidenceWord(BaseModel):
    word: str
    field: Literal["subject", "description"] = Field(description="Which text field the word is in.")
    start: int = Field(description="Character offset of the word in that field, as sent.")
    end: int = Field(description="Offset just past the word: `field[start:end]` is the word.")
    weight: float = Field(
        description="SHAP (Owen) value: how much the word raises this label's calibrated probability."
    )


class LabelEvidence(BaseModel):
    label: str
    probability: float
    words: list[EvidenceWord] = Field(description="The words that raised the label most, strongest first.")


class Explanation(BaseModel):
    method: Literal["shap-partition"] = "shap-partition"
    labels: list[LabelEvidence] = Field(description="The predicted category, then the runner-up.")


class Prediction(BaseModel):
    prediction_id: str = Field(
        description="Unique id of this answer; its audit record and any review item carry the same id."
    )
    ticket_id: str | int | None = None
    category: str
    confidence: float = Field(description="Calibrated probability of `category`.")
    probabilities: list[LabelProbability] = Field(description="Most likely categories first.")
    priority: str | None = None
    priority_confidence: float | None = None
    prediction_set: list[str] | None = Field(
        None,
        description="The conformal prediction set: the categories that may be the true one at the model's"
        " miscoverage alpha (class-conditional), most likely first. One label means the model is sure at"
        " that level. Null for a model trained before conformal sets.",
    )
    tags: list[LabelProbability] | None = Field(
        None,
        description="Tags above their own thresholds, most likely first; null for a model trained without"
        " `--tags`.",
    )
    route: Literal["auto", "review"] = Field(
        description="`auto` when the routing rule in force (threshold, singleton set, or both) says the"
        " model is sure enough; `review` sends the ticket to people."
    )
    queue_id: str | None = Field(
        None,
        description="The helpdesk's own group or queue id for `category`, from the route map"
        " (TRIAGE_ROUTE_MAP_FILE). Null without a map, and for a label the map does not name: such a ticket"
        " is routed to `review`, never sent out.",
    )
    model_version: str
    cached: bool
    review_id: int | None = Field(
        None,
        description="The review queue item of an answer routed to `review`. Null while the review store is"
        " unreachable: the item then waits in the local spool and is queued, under this answer's"
        " `prediction_id`, when the store is back.",
    )
    explanation: Explanation | None = Field(
        None, description="With `?explain=true`: the words behind the predicted category and the runner-up."
    )


class BatchResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str
    cached: int = Field(description="How many answers came from the cache.")


class ReviewItemOut(BaseModel):
    """One review queue item; ``status`` already reads an expired lease as pending."""

    id: int
    status: Literal["pending", "claimed", "resolved"]
    predicted_category: str
    confidence: float
    predicted_priority: str | None
    top_labels: list[LabelProbability] = Field(description="The model's most likely categories first.")
    model_version: str
    enqueued_at: datetime
    ticket_id: str | None
    subject: str | None
    description: str | None
    created_at: datetime | None
    channel: str | None
    customer_tier: str | None
    urgency: str | None
    language: str | None
    metadata: dict[str, Any] | None
    claimed_by: str | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolved_category: str | None
    resolved_priority: str | None
    note: str | None
    predicted_tags: list[str] | None = Field(None, description="The model's tags, most likely first.")
    resolved_tags: list[str] | None = Field(None, description="The reviewer's tags; null when not answered.")


class ReviewList(BaseModel):
    items: list[ReviewItemOut] = Field(description="Newest first.")
    limit: int
    offset: int


class ResolveRequest(RequestModel):
    category: Label = Field(description="One of the model's category labels.")
    priority: Label | None = Field(None, description="The right priority; omit to keep the model's.")
    note: NoteText | None = Field(None, description="Free text kept with the answer.")
    tags: list[Label] | None = Field(
        None,
        max_length=200,
        description="The ticket's right tags (models trained with --tags); omit to keep the model's, send"
        " [] for none.",
    )


class CategoryAgreement(BaseModel):
    resolved: int
    agreed: int
    agreement: float


class ReviewStats(BaseModel):
    pending: int
    claimed: int
    resolved_today: int = Field(description="Resolved since midnight UTC.")
    resolved_total: int
    median_seconds_to_resolve: float | None
    agreement: float | None = Field(description="Share of resolved items whose category the reviewer kept.")
    agreement_by_category: dict[str, CategoryAgreement] = Field(description="By predicted category.")
    reviewer: str | None = Field(None, description="The caller's name: the reviewer these counts are for.")
    resolved_by_reviewer_today: int | None = Field(
        None, description="Resolved by the caller since midnight UTC."
    )
    resolved_by_reviewer_total: int | None = None


class FieldError(BaseModel):
    field: str
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[FieldError] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer has this shape, so a client needs one error parser."""

    error: ErrorDetail
