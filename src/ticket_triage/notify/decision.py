"""What the notifier sends for one routing decision: the answer as the caller got it, and where from."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ticket_triage.notify.outbox import Notification

if TYPE_CHECKING:
    from ticket_triage.serving.schemas import Prediction

PREDICTION_EVENT = "prediction"


def ticket_key(source: str, ticket_id: object) -> str | None:
    """One ticket's decisions go out in order; tickets without an id have no order to keep."""
    return None if ticket_id is None else f"{source}:{ticket_id}"


def decision(answer: Prediction, source: str, decided_at: datetime) -> Notification:
    """``source`` is the helpdesk integration (or ``api``) the ticket came from; ``queue_id`` the route
    map's id for it. The body is the answer's own JSON, so a receiver parses one shape everywhere."""
    payload = {
        "event": PREDICTION_EVENT,
        "source": source,
        "decided_at": decided_at.isoformat(),
        "prediction": answer.model_dump(mode="json", exclude={"explanation"}),
    }
    return Notification(
        prediction_id=answer.prediction_id,
        ticket_key=ticket_key(source, answer.ticket_id),
        event=PREDICTION_EVENT,
        payload=payload,
        created_at=decided_at,
    )
