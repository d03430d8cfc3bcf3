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

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from ticket_triage.review import (
    NotLeaseHolderError,
    ResolveConflictError,
    ReviewItem,
    ReviewNotFoundError,
)
from ticket_triage.serving.errors import ApiError, documented
from ticket_triage.serving.registry import ModelRegistry
from ticket_triage.serving.routes.deps import (
    MetricsDep,
    PredictionsDep,
    RegistryDep,
    ReviewCaller,
    ReviewStoreDep,
    SettingsDep,
)
from ticket_triage.serving.schemas import (
    INT64_MAX,
    TIME_RANGE,
    BoundedTime,
    Explanation,
    FieldError,
    LabelProbability,
    ResolveRequest,
    ReviewItemOut,
    ReviewList,
    ReviewStats,
    ShortText,
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
    "tags",
)

_MEANING = {
    403: "The key's role may not review.",
    404: "No review item with that id.",
    409: "Not the lease holder, or already resolved differently.",
    422: "A parameter or field out of its bounds, named in `error.fields`.",
    503: "The review store is unreachable.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return documented(
        401, 403, 503, *codes, meaning={c: _MEANING[c] for c in (403, 503, *codes) if c in _MEANING}
    )


#: Deepest page ``offset`` reaches; past it, narrow the list with ``since`` or ``status`` instead.
MAX_OFFSET = 1_000_000
#: Characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")

Since = Annotated[
    BoundedTime | None,
    Query(description=f"Queued at or after this time, {TIME_RANGE}; without a zone it is read as UTC."),
]
ItemId = Annotated[
    int, Path(ge=1, le=INT64_MAX, description="The review item's id (a positive 64-bit integer).")
]


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


@router.get("", response_model=ReviewList, responses=_errors(422), summary="List review items")
async def list_reviews(
    reviews: ReviewStoreDep,
    _: ReviewCaller,
    status: Annotated[Literal["pending", "claimed", "resolved"] | None, Query()] = None,
    category: Annotated[ShortText | None, Query(description="The model's predicted category.")] = None,
    since: Since = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page.")] = 50,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description=f"Items to skip, at most {MAX_OFFSET}.")
    ] = 0,
) -> ReviewList:
    """Newest first."""
    items = await _call(
        reviews.list, status=status, category=category, since=since, limit=limit, offset=offset
    )
    return ReviewList(items=[_out(i) for i in items], limit=limit, offset=offset)


@router.get("/stats", response_model=ReviewStats, responses=_errors(), summary="Queue figures and agreement")
async def review_stats(reviews: ReviewStoreDep, caller: ReviewCaller) -> ReviewStats:
    """Queue figures for everyone, plus the caller's own resolutions."""
    return ReviewStats.model_validate(await _call(reviews.stats, reviewer=caller.name))


def neutralise_cell(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a leading ``'``, which makes it plain text
    (OWASP's advice for CSV injection); the text after the quote is the original. Other values pass."""
    if isinstance(value, str) and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value


def corrections_csv(rows: list[dict[str, Any]]) -> str:
    """The CSV export: header row = the columns, every formula-leading cell neutralised."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else list(EXPORT_COLUMNS))
    writer.writeheader()
    writer.writerows({key: neutralise_cell(value) for key, value in row.items()} for row in rows)
    return buffer.getvalue()


@router.get(
    "/export",
    response_class=Response,
    responses={
        200: {
            "description": "The corrections file, sent as an attachment.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
        **_errors(422),
    },
    summary="Reviewers' answers as training rows",
)
async def export_corrections(
    reviews: ReviewStoreDep,
    _: ReviewCaller,
    since: Annotated[
        BoundedTime | None,
        Query(description=f"Resolved at or after this time, {TIME_RANGE}; without a zone it is read as UTC."),
    ] = None,
    export_format: Annotated[Literal["csv", "jsonl"], Query(alias="format")] = "csv",
) -> Response:
    """CSV or JSON Lines, oldest answer first; ready for ``triage train`` and ``triage retrain``.

    Scope, by choice: every reviewer's resolutions, not only the caller's. Each correction is training
    data for the next model whoever made it, and a reviewer key already sees every item in ``GET /reviews``;
    the export holds no reviewer names. Only review and admin keys may export (a predict key gets 403).

    CSV cells starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return get a leading ``'`` so that a
    spreadsheet shows them as text instead of running them; JSON Lines carries the stored text unchanged.
    """
    rows = await _call(reviews.corrections, since)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if export_format == "jsonl":
        body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        media_type = "application/x-ndjson"
    else:
        body = corrections_csv(rows)
        media_type = "text/csv; charset=utf-8"
    filename = f"review-corrections-{stamp}.{export_format}"
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.post(
    "/claim",
    response_model=ReviewItemOut,
    responses={204: {"description": "Nothing is waiting for review."}, **_errors(413)},
    summary="Take the most urgent waiting item",
)
async def claim(reviews: ReviewStoreDep, caller: ReviewCaller) -> Any:
    """Leases the item to the caller (the key's name) for the configured lease time."""
    item = await _call(reviews.claim, caller.name)
    if item is None:
        return Response(status_code=204)
    return _out(item)


@router.get(
    "/{item_id}/explanation",
    response_model=Explanation,
    responses=_errors(404, 422),
    summary="Why the model hesitated over an item",
)
async def explanation(
    item_id: ItemId,
    reviews: ReviewStoreDep,
    predictions: PredictionsDep,
    settings: SettingsDep,
    _: ReviewCaller,
) -> Explanation:
    """The words behind the two most likely categories of the item's ticket, by the model serving now
    (SHAP; it costs many model passes, so the page asks for it once per claimed item)."""
    item = await _call(reviews.get, item_id)
    if item is None:
        raise ApiError(404, f"no review item with id {item_id}", code="review_not_found")
    model = predictions.registry.current
    return await predictions.explain(
        model, item, top_words=settings.explain_top_words, max_evals=settings.explain_max_evals
    )


def _check_labels(registry: ModelRegistry, request: ResolveRequest) -> None:
    """Answers must be labels the serving model knows, or they could never be trained on."""
    model = registry.current
    problems = []
    if request.category not in model.category_labels:
        allowed = ", ".join(model.category_labels)
        problems.append(FieldError(field="category", message=f"unknown category; one of: {allowed}"))
    labels = model.priority_labels
    if request.priority is not None and labels is not None and request.priority not in labels:
        problems.append(
            FieldError(field="priority", message=f"unknown priority; one of: {', '.join(labels)}")
        )
    known_tags = [] if model.bundle.tags is None else model.bundle.tags.tags
    unknown = sorted(set(request.tags or ()) - set(known_tags))
    if unknown:
        allowed = ", ".join(known_tags) if known_tags else "none: this model has no tags"
        shown = ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else "")
        problems.append(FieldError(field="tags", message=f"unknown tag(s) {shown}; one of: {allowed}"))
    if problems:
        summary = "; ".join(f"{p.field}: {p.message}" for p in problems)
        raise ApiError(422, f"invalid request: {summary}", fields=problems)


@router.post(
    "/{item_id}/resolve",
    response_model=ReviewItemOut,
    responses=_errors(404, 409, 413, 422),
    summary="Record the right category (and priority)",
)
async def resolve(
    item_id: ItemId,
    request: ResolveRequest,
    reviews: ReviewStoreDep,
    registry: RegistryDep,
    metrics: MetricsDep,
    caller: ReviewCaller,
) -> ReviewItemOut:
    """Only the lease holder may answer; sending the same answer again returns the item unchanged."""
    _check_labels(registry, request)
    asked_at = datetime.now(UTC)
    item = await _call(
        reviews.resolve, item_id, caller.name, request.category, request.priority, request.note, request.tags
    )
    if item.resolved_at is not None and item.resolved_at >= asked_at:  # new, not a repeated answer
        agreed = item.resolved_category == item.predicted_category
        metrics.reviews_resolved.labels(agreed=str(agreed).lower()).inc()
    return _out(item)


@router.post(
    "/{item_id}/release",
    response_model=ReviewItemOut,
    responses=_errors(404, 409, 413, 422),
    summary="Hand a claimed item back to the queue",
)
async def release(item_id: ItemId, reviews: ReviewStoreDep, caller: ReviewCaller) -> ReviewItemOut:
    return _out(await _call(reviews.release, item_id, caller.name))
