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
    ticket_id: str | int | None = None
    category: str
    confidence: float = Field(description="Calibrated probability of `category`.")
    probabilities: list[LabelProbability] = Field(description="Most likely categories first.")
    priority: str | None = None
    priority_confidence: float | None = None
    route: Literal["auto", "review"] = Field(description="`auto` when confidence ≥ the routing threshold.")
    model_version: str
    cached: bool


class BatchResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str
    cached: int = Field(description="How many answers came from the cache.")


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
