"""What travels on the broker: the ticket a message carries, and the result and dead-letter messages.

A ticket message's body is exactly the ``/predict`` body, so a helpdesk that already calls the API can
publish the same JSON. Reasons for refusing a message are short and name the fault, never the body:
they end up in a header anyone reading the dead-letter queue sees, and in counts the consumer logs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from ticket_triage.serving.schemas import Prediction, Ticket

REASON_HEADER = "x-triage-reason"
TICKET_ID_HEADER = "x-triage-ticket-id"
REDELIVERED_HEADER = "x-triage-redelivered"
#: Longest reason kept in the header: enough to name a few fields, small next to any frame limit.
REASON_MAX_CHARS = 500
#: Validation errors named in one reason; the rest are counted.
REASON_MAX_ERRORS = 3


class MessageRejectedError(ValueError):
    """A message that no retry can make valid; ``kind`` is a stable code, ``reason`` says what was wrong."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.reason = f"{kind}: {detail}"[:REASON_MAX_CHARS]
        super().__init__(self.reason)


def parse_ticket(body: bytes, max_text_chars: int) -> Ticket:
    """The ticket in ``body``, checked as ``/predict`` checks it; raises :class:`MessageRejectedError`."""
    try:
        ticket = Ticket.model_validate_json(body)
    except ValidationError as exc:
        raise _rejection(exc) from None
    too_long = [
        f"{name} has {len(value)} characters, over the limit of {max_text_chars}"
        for name in ("subject", "description")
        if (value := getattr(ticket, name)) is not None and len(value) > max_text_chars
    ]
    if too_long:
        raise MessageRejectedError("over_length", "; ".join(too_long))
    return ticket


def _rejection(exc: ValidationError) -> MessageRejectedError:
    errors = exc.errors(include_input=False, include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return MessageRejectedError("not_json", "the body is not a JSON document")
    named = []
    for error in errors[:REASON_MAX_ERRORS]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        named.append(f"{where}: {error['msg']}")
    more = len(errors) - len(named)
    if more > 0:
        named.append(f"and {more} more")
    return MessageRejectedError("invalid_ticket", "; ".join(named))


def result_message(
    prediction: Prediction, incoming: AbstractIncomingMessage, app_id: str
) -> aio_pika.Message:
    """The answer as JSON, keyed so a reader can dedupe (message_id) and match it to its input."""
    headers: dict[str, bool | str] = {REDELIVERED_HEADER: bool(incoming.redelivered)}
    if prediction.ticket_id is not None:
        headers[TICKET_ID_HEADER] = str(prediction.ticket_id)
    return aio_pika.Message(
        body=prediction.model_dump_json().encode("utf-8"),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=prediction.prediction_id,
        correlation_id=incoming.message_id,
        headers=headers,
        app_id=app_id,
        timestamp=datetime.now(UTC),
    )


def dead_letter_message(incoming: AbstractIncomingMessage, reason: str, app_id: str) -> aio_pika.Message:
    """The input as it came (body and properties) plus the reason, so it can be fixed and re-published."""
    headers = dict(incoming.headers or {})
    headers[REASON_HEADER] = reason
    # A consumer killed between the broker's confirm and its ack parks the message again on redelivery:
    # this marks such a repeat (same message_id) for whoever reads the dead letters.
    headers[REDELIVERED_HEADER] = bool(incoming.redelivered)
    return aio_pika.Message(
        body=incoming.body,
        content_type=incoming.content_type,
        content_encoding=incoming.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=incoming.message_id,
        correlation_id=incoming.correlation_id,
        headers=headers,
        app_id=app_id,
        timestamp=incoming.timestamp,
    )
