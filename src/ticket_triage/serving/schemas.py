"""The wire format of the prediction API: what a caller may send and what it gets back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

_SHORT = 200


def _ticket_id(value: object) -> str | int | None:
    """One clear message instead of pydantic's one-per-union-member."""
    if value is None or (isinstance(value, str | int) and not isinstance(value, bool)):
        if isinstance(value, str) and len(value) > _SHORT:
            raise ValueError(f"at most {_SHORT} characters")
        return value
    raise ValueError("must be a string or an integer")


TicketId = Annotated[
    str | int | None,
    PlainValidator(_ticket_id),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "maxLength": _SHORT}, {"type": "integer"}, {"type": "null"}]}
    ),
]


class Ticket(BaseModel):
    """One ticket as the helpdesk system knows it; unknown fields are refused so a typo cannot go unseen."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    ticket_id: TicketId = Field(None, description="Copied to the answer; the caller's own ID.")
    subject: str | None = Field(None, description="Ticket subject line.")
    description: str | None = Field(None, description="Ticket body. At least one of subject/description.")
    created_at: datetime | None = Field(
        None, description="ISO 8601 creation time; without a zone it is read as UTC."
    )
    channel: str | None = Field(None, max_length=_SHORT, examples=["email"])
    customer_tier: str | None = Field(
        None, max_length=_SHORT, description="Any value; one the model never saw is treated as unknown."
    )
    urgency: str | None = Field(None, max_length=_SHORT, description="Urgency the customer declared.")
    language: str | None = Field(None, max_length=_SHORT)
    metadata: dict[str, Any] | None = Field(None, description="Free-form; stored, never used to predict.")

    @model_validator(mode="after")
    def _needs_text(self) -> Ticket:
        if not (self.subject or "").strip() and not (self.description or "").strip():
            raise ValueError("subject and description are both empty; send at least one of them")
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tickets: list[Ticket] = Field(description="Tickets to predict; the answer keeps their order.")


class LabelProbability(BaseModel):
    label: str
    probability: float


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
    route: Literal["auto", "review"] = Field(description="`auto` when confidence ≥ the routing threshold.")
    model_version: str
    cached: bool
    review_id: int | None = Field(
        None,
        description="The review queue item of an answer routed to `review`. Null while the review store is"
        " unreachable: the item then waits in the local spool and is queued, under this answer's"
        " `prediction_id`, when the store is back.",
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


class ReviewList(BaseModel):
    items: list[ReviewItemOut] = Field(description="Newest first.")
    limit: int
    offset: int


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str = Field(min_length=1, max_length=_SHORT, description="One of the model's category labels.")
    priority: str | None = Field(
        None, max_length=_SHORT, description="The right priority; omit to keep the model's."
    )
    note: str | None = Field(None, max_length=10_000, description="Free text kept with the answer.")


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
