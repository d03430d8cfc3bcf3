"""``/predict`` and ``/predict/batch``: the helpdesk system's two calls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ticket_triage.serving.batcher import ticket_chars
from ticket_triage.serving.errors import ApiError, documented
from ticket_triage.serving.routes.deps import PredictCaller, PredictionsDep, SettingsDep
from ticket_triage.serving.schemas import (
    BatchRequest,
    BatchResponse,
    FieldError,
    Prediction,
    Ticket,
)

router = APIRouter(tags=["predict"])

_ERRORS = documented(
    401,
    422,
    meaning={
        403: "The key's role may not predict.",
        413: "Body over the byte limit, or a batch over the ticket count or total characters limit.",
        503: "The service is shutting down; retry on another instance.",
    },
)

TopK = Annotated[
    int, Query(ge=0, le=10_000, description="How many categories to list, most likely first; 0 lists all.")
]


def check_lengths(tickets: list[Ticket], limit: int, prefix: str) -> None:
    """Texts over the limit are refused by name (the limit is a setting, so it is checked here)."""
    problems = []
    for i, ticket in enumerate(tickets):
        for name in ("subject", "description"):
            value = getattr(ticket, name)
            if value is not None and len(value) > limit:
                where = f"{prefix}[{i}].{name}" if prefix else name
                problems.append(
                    FieldError(field=where, message=f"{len(value)} characters; the limit is {limit}")
                )
    if problems:
        raise ApiError(
            422, "text over the length limit: " + ", ".join(p.field for p in problems), fields=problems
        )


def _check_total_chars(tickets: list[Ticket], limit: int) -> None:
    """Bounds one request's scoring cost: any ticket may be at its own limit, not every ticket at once."""
    total = sum(ticket_chars(t) for t in tickets)
    if total > limit:
        raise ApiError(
            413,
            f"batch of {total} characters of subject and description is over the limit of {limit}; split it",
            code="batch_too_large",
            fields=[FieldError(field="tickets", message=f"at most {limit} characters of text per request")],
        )


Explain = Annotated[
    bool,
    Query(
        description="Add `explanation`: the words behind the category and the runner-up (SHAP). It scores"
        " the ticket again for each of up to TRIAGE_EXPLAIN_MAX_EVALS masked copies, so it costs far more"
        " than a prediction; off by default."
    ),
]


@router.post("/predict", response_model=Prediction, responses=_ERRORS, summary="Predict one ticket")
async def predict(
    ticket: Ticket,
    predictions: PredictionsDep,
    settings: SettingsDep,
    _: PredictCaller,
    top_k: TopK = 5,
    explain: Explain = False,
) -> Prediction:
    """Category, priority, calibrated confidence, prediction set and route of one ticket."""
    check_lengths([ticket], settings.max_text_chars, "")
    run = await predictions.predict([ticket], top_k, endpoint="predict")
    answer = run.predictions[0]
    if not explain:
        return answer
    explanation = await predictions.explain(
        run.model, ticket, top_words=settings.explain_top_words, max_evals=settings.explain_max_evals
    )
    return answer.model_copy(update={"explanation": explanation})


@router.post(
    "/predict/batch", response_model=BatchResponse, responses=_ERRORS, summary="Predict many tickets at once"
)
async def predict_batch(
    batch: BatchRequest,
    predictions: PredictionsDep,
    settings: SettingsDep,
    _: PredictCaller,
    top_k: TopK = 5,
) -> BatchResponse:
    """One answer per ticket, in order; cache hits come from the cache and the rest share one model pass."""
    limit = settings.batch_limit
    if len(batch.tickets) > limit:
        raise ApiError(
            413,
            f"batch of {len(batch.tickets)} tickets is over the limit of {limit}; split it",
            code="batch_too_large",
            fields=[FieldError(field="tickets", message=f"at most {limit} tickets per request")],
        )
    if not batch.tickets:
        raise ApiError(
            422, "tickets is empty", fields=[FieldError(field="tickets", message="send at least one")]
        )
    check_lengths(batch.tickets, settings.max_text_chars, "tickets")
    _check_total_chars(batch.tickets, settings.max_batch_chars)
    run = await predictions.predict(batch.tickets, top_k, endpoint="batch")
    return BatchResponse(predictions=run.predictions, model_version=run.model.version, cached=run.cached)
