"""``/reviews``: reviewers claim low-confidence predictions, answer them, and export the answers."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from ticket_triage.review import (
    NotLeaseHolderError,
    ResolveConflictError,
    ReviewItem,
    ReviewNotFoundError,
)
from ticket_triage.serving.errors import ApiError
from ticket_triage.serving.routes.deps import ReviewCaller, ServiceDep
from ticket_triage.serving.schemas import (
    ErrorResponse,
    FieldError,
    LabelProbability,
    ResolveRequest,
    ReviewItemOut,
    ReviewList,
    ReviewStats,
)

router = APIRouter(prefix="/reviews", tags=["reviews"])

T = TypeVar("T")

#: Columns of an export with no rows yet (the keys of ``ReviewStore.corrections`` rows).
EXPORT_COLUMNS = (
    "ticket_id",
    "subject",
    "description",
    "created_at",
    "channel",
    "customer_tier",
    "urgency",
    "category",
    "priority",
)

_AUTH = {
    401: {"model": ErrorResponse, "description": "No key, or an unknown key."},
    403: {"model": ErrorResponse, "description": "The key's role may not review."},
    503: {"model": ErrorResponse, "description": "The review store is unreachable."},
}
_ITEM_ERRORS = {
    **_AUTH,
    404: {"model": ErrorResponse, "description": "No review item with that id."},
    409: {"model": ErrorResponse, "description": "Not the lease holder, or already resolved differently."},
}


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store call on a worker thread and turn its refusals into the API's error shape."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except ReviewNotFoundError as exc:
        raise ApiError(404, str(exc), code="review_not_found") from exc
    except NotLeaseHolderError as exc:
        raise ApiError(
            409, f"{exc}; claim the item (POST /reviews/claim) before answering it", code="not_lease_holder"
        ) from exc
    except ResolveConflictError as exc:
        raise ApiError(409, f"{exc}; a resolved answer is final", code="resolve_conflict") from exc
    except SQLAlchemyError as exc:
        raise ApiError(
            503, "the review store is unreachable; retry later", code="review_store_unavailable"
        ) from exc


def _out(item: ReviewItem) -> ReviewItemOut:
    fields = dataclasses.asdict(item)
    fields["top_labels"] = [LabelProbability(label=label, probability=p) for label, p in item.top_labels]
    return ReviewItemOut.model_validate(fields)


@router.get("", response_model=ReviewList, responses=_AUTH, summary="List review items")
async def list_reviews(
    service: ServiceDep,
    _: ReviewCaller,
    status: Annotated[Literal["pending", "claimed", "resolved"] | None, Query()] = None,
    category: Annotated[str | None, Query(description="The model's predicted category.")] = None,
    since: Annotated[datetime | None, Query(description="Queued at or after this time.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ReviewList:
    """Newest first."""
    items = await _call(
        service.reviews.list, status=status, category=category, since=since, limit=limit, offset=offset
    )
    return ReviewList(items=[_out(i) for i in items], limit=limit, offset=offset)


@router.get("/stats", response_model=ReviewStats, responses=_AUTH, summary="Queue figures and agreement")
async def review_stats(service: ServiceDep, caller: ReviewCaller) -> ReviewStats:
    """Queue figures for everyone, plus the caller's own resolutions."""
    return ReviewStats.model_validate(await _call(service.reviews.stats, reviewer=caller.name))


@router.get(
    "/export",
    responses={**_AUTH, 200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
    summary="Reviewers' answers as training rows",
)
async def export_corrections(
    service: ServiceDep,
    _: ReviewCaller,
    since: Annotated[datetime | None, Query(description="Resolved at or after this time.")] = None,
    export_format: Annotated[Literal["csv", "jsonl"], Query(alias="format")] = "csv",
) -> Response:
    """CSV (header row = the columns) or JSON Lines, oldest answer first; ready for ``triage train``."""
    rows = await _call(service.reviews.corrections, since)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if export_format == "jsonl":
        body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        media_type = "application/x-ndjson"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else list(EXPORT_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
        body = buffer.getvalue()
        media_type = "text/csv; charset=utf-8"
    filename = f"review-corrections-{stamp}.{export_format}"
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.post(
    "/claim",
    response_model=ReviewItemOut,
    responses={**_AUTH, 204: {"description": "Nothing is waiting for review."}},
    summary="Take the most urgent waiting item",
)
async def claim(service: ServiceDep, caller: ReviewCaller) -> Any:
    """Leases the item to the caller (the key's name) for the configured lease time."""
    item = await _call(service.reviews.claim, caller.name)
    if item is None:
        return Response(status_code=204)
    return _out(item)


def _check_labels(service: ServiceDep, request: ResolveRequest) -> None:
    """Answers must be labels the serving model knows, or they could never be trained on."""
    model = service.registry.current
    problems = []
    if request.category not in model.category_labels:
        allowed = ", ".join(model.category_labels)
        problems.append(FieldError(field="category", message=f"unknown category; one of: {allowed}"))
    labels = model.priority_labels
    if request.priority is not None and labels is not None and request.priority not in labels:
        problems.append(
            FieldError(field="priority", message=f"unknown priority; one of: {', '.join(labels)}")
        )
    if problems:
        summary = "; ".join(f"{p.field}: {p.message}" for p in problems)
        raise ApiError(422, f"invalid request: {summary}", fields=problems)


@router.post(
    "/{item_id}/resolve",
    response_model=ReviewItemOut,
    responses={**_ITEM_ERRORS, 422: {"model": ErrorResponse, "description": "Unknown label or field."}},
    summary="Record the right category (and priority)",
)
async def resolve(
    item_id: int, request: ResolveRequest, service: ServiceDep, caller: ReviewCaller
) -> ReviewItemOut:
    """Only the lease holder may answer; sending the same answer again returns the item unchanged."""
    _check_labels(service, request)
    asked_at = datetime.now(UTC)
    item = await _call(
        service.reviews.resolve, item_id, caller.name, request.category, request.priority, request.note
    )
    if item.resolved_at is not None and item.resolved_at >= asked_at:  # new, not a repeated answer
        agreed = item.resolved_category == item.predicted_category
        service.metrics.reviews_resolved.labels(agreed=str(agreed).lower()).inc()
    return _out(item)


@router.post(
    "/{item_id}/release",
    response_model=ReviewItemOut,
    responses=_ITEM_ERRORS,
    summary="Hand a claimed item back to the queue",
)
async def release(item_id: int, service: ServiceDep, caller: ReviewCaller) -> ReviewItemOut:
    return _out(await _call(service.reviews.release, item_id, caller.name))
