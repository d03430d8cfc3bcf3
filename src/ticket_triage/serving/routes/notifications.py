"""Operator view of the notification outbox: counts, the latest rows, and sending a dead one again.

Without a configured notifier these answer 404 ``notifier_disabled``: no URL means nothing was sent, so
there is nothing to look at or retry.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from ticket_triage.notify.delivery import Notifier
from ticket_triage.notify.outbox import (
    NotDeadError,
    NotificationNotFoundError,
    OutboxEntry,
    list_entries,
    requeue_dead,
    status_counts,
)
from ticket_triage.serving.errors import ApiError, documented
from ticket_triage.serving.routes.deps import AdminCaller
from ticket_triage.serving.schemas import INT64_MAX

router = APIRouter(prefix="/admin/notifications", tags=["admin"])

Status = Literal["pending", "delivered", "dead"]
_DISABLED = "No notifier is configured (set TRIAGE_NOTIFY_URL): nothing is sent, so nothing is listed."


def _notifier(request: Request) -> Notifier:
    """Called in the handler, not as a dependency: the key is checked first, then the parameters (422),
    and only then does a service without a notifier say so."""
    notifier = getattr(request.app.state.service, "notifier", None)
    if notifier is None:
        raise ApiError(404, _DISABLED, code="notifier_disabled")
    return notifier


class NotificationCounts(BaseModel):
    pending: int
    delivered: int
    dead: int


class NotificationView(BaseModel):
    id: int
    prediction_id: str
    ticket_key: str | None
    event: str
    status: Status
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = Field(description="Why the latest attempt failed (never the payload).")
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, entry: OutboxEntry) -> NotificationView:
        return cls(
            id=entry.id,
            prediction_id=entry.prediction_id,
            ticket_key=entry.ticket_key,
            event=entry.event,
            status=entry.status,  # type: ignore[arg-type]  # the table holds only these
            attempts=entry.attempts,
            next_attempt_at=entry.next_attempt_at,
            last_error=entry.last_error,
            created_at=entry.created_at,
            delivered_at=entry.delivered_at,
        )


class NotificationList(BaseModel):
    counts: NotificationCounts
    items: list[NotificationView] = Field(description="The latest rows, newest first.")


@router.get(
    "",
    response_model=NotificationList,
    responses=documented(401, 422, meaning={403: "Only an admin key may read the outbox.", 404: _DISABLED}),
    summary="Outbox counts and the latest notifications",
)
async def list_notifications(
    request: Request,
    _: AdminCaller,
    status: Annotated[Status | None, Query(description="Only rows of this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> NotificationList:
    """Dead rows carry ``last_error``; pending ones the time of their next attempt."""
    notifier = _notifier(request)
    counts = await asyncio.to_thread(status_counts, notifier.engine)
    entries = await asyncio.to_thread(list_entries, notifier.engine, status, limit)
    return NotificationList(
        counts=NotificationCounts(**counts), items=[NotificationView.of(e) for e in entries]
    )


@router.post(
    "/{notification_id}/retry",
    response_model=NotificationView,
    responses=documented(
        401,
        413,
        422,
        meaning={
            403: "Only an admin key may re-queue.",
            404: f"No notification with this id. {_DISABLED}",
            409: "The notification is not dead (pending ones are on their way, delivered ones arrived).",
        },
    ),
    summary="Send a dead notification again",
)
async def retry_notification(
    request: Request,
    _: AdminCaller,
    notification_id: Annotated[int, Path(ge=1, le=INT64_MAX)],
) -> NotificationView:
    """Back to pending with its attempts reset, due now; the receiver dedupes by ``X-Triage-Delivery``."""
    notifier = _notifier(request)
    try:
        entry = await asyncio.to_thread(requeue_dead, notifier.engine, notification_id, datetime.now(UTC))
    except NotificationNotFoundError as exc:
        raise ApiError(404, str(exc), code="notification_not_found") from exc
    except NotDeadError as exc:
        raise ApiError(409, str(exc), code="notification_not_dead") from exc
    notifier.wake()
    return NotificationView.of(entry)
