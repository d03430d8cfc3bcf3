"""``POST /integrations/{system}``: ticket webhooks from Zendesk, Freshdesk, Jira SM and Zammad.

Auth is the helpdesk's own: each system signs (or carries a shared token in) its deliveries, checked by
its adapter in ``ticket_triage.integrations`` against the secret in settings; no API key is involved,
because a helpdesk's webhook form cannot always send one. A system without a secret configured refuses
every call, so an integration is never open by accident. Refusals are logged with the system, the reason
and the body's size, never the body.
"""

from __future__ import annotations

import json
import logging
import time
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import SecretStr, ValidationError

from ticket_triage.config import Settings
from ticket_triage.integrations import adapters
from ticket_triage.integrations.base import PayloadError, SignatureError
from ticket_triage.serving.errors import ApiError, documented, field_path
from ticket_triage.serving.routes.deps import MetricsDep, PredictionsDep, SettingsDep
from ticket_triage.serving.routes.predict import check_lengths
from ticket_triage.serving.schemas import FieldError, Prediction, Ticket

log = logging.getLogger(__name__)

router = APIRouter(tags=["integrations"])

#: Answers list this many categories, as ``/predict`` does by default.
WEBHOOK_TOP_K = 5


class System(StrEnum):
    zendesk = "zendesk"
    freshdesk = "freshdesk"
    jira = "jira"
    zammad = "zammad"


def webhook_secret(settings: Settings, system: str) -> SecretStr | None:
    secret: SecretStr | None = getattr(settings, f"{system}_webhook_secret")
    return secret


@router.post(
    "/integrations/{system}",
    response_model=Prediction,
    summary="Predict a ticket a helpdesk sent by webhook",
    responses=documented(
        413,
        422,
        meaning={
            401: "Not signed, wrongly signed, outside the replay window, or no secret is configured for"
            " this system. Role: the helpdesk's own signature or token, no API key.",
            503: "The service is shutting down, or cannot keep the answer; the helpdesk retries.",
        },
    ),
)
async def webhook(
    system: Annotated[System, Path(description="zendesk, freshdesk, jira or zammad")],
    request: Request,
    predictions: PredictionsDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> Prediction:
    """The prediction for the ticket in the helpdesk's own webhook payload (docs/integrations.md).

    Idempotent by the helpdesk's ticket id: a retried delivery of the same ticket version gets the same
    answer (`prediction_id`, `review_id`); an edited ticket waiting in the review queue updates its item.
    """
    body = await request.body()
    adapter = adapters(replay_seconds=settings.webhook_replay_seconds)[system.value]
    secret = webhook_secret(settings, system.value)
    try:
        if secret is None:
            setting = f"TRIAGE_{system.value.upper()}_WEBHOOK_SECRET"
            raise SignatureError(f"no secret is configured for {system.value}; set {setting}")
        adapter.verify(request.headers, body, secret.get_secret_value(), time.time())
    except SignatureError as exc:
        metrics.webhook_deliveries.labels(system=system.value, outcome="unauthorized").inc()
        client = request.client.host if request.client else "unknown"
        log.warning("refused %s webhook from %s (%d bytes): %s", system.value, client, len(body), exc.reason)
        raise ApiError(401, f"{system.value} webhook refused: {exc.reason}", code="bad_signature") from exc
    try:
        try:
            inbound = adapter.parse(_json(body))
        except PayloadError as exc:
            raise ApiError(422, exc.reason, fields=[FieldError(field=exc.field, message=exc.reason)]) from exc
        ticket = _ticket(inbound.fields)
    except ApiError:
        metrics.webhook_deliveries.labels(system=system.value, outcome="invalid").inc()
        raise
    check_lengths([ticket], settings.max_text_chars, "")
    run = await predictions.predict([ticket], WEBHOOK_TOP_K, endpoint="webhook", source=system.value)
    metrics.webhook_deliveries.labels(system=system.value, outcome="answered").inc()
    return run.predictions[0]


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(
            422,
            "the webhook body is not JSON",
            code="malformed_json",
            fields=[FieldError(field="body", message="send the system's JSON webhook payload")],
        ) from exc


def _ticket(fields: dict[str, object]) -> Ticket:
    """The adapter's fields through the same validation as a ``/predict`` body."""
    try:
        return Ticket.model_validate(fields)
    except ValidationError as exc:
        problems = [FieldError(field=field_path(e["loc"]), message=e["msg"]) for e in exc.errors()]
        raise ApiError(
            422,
            "the ticket in the payload is not valid: " + ", ".join(p.field for p in problems),
            fields=problems,
        ) from exc
