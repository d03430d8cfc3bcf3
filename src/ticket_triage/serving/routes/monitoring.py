"""``/monitoring``: the drift of recent traffic against the serving model's training reference."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from ticket_triage.monitoring.evidently_report import (
    ReportUnavailableError,
    drift_report_html,
    reference_frame,
    window_frame,
)
from ticket_triage.serving.errors import ApiError, documented
from ticket_triage.serving.routes.deps import AdminCaller, MonitorsDep, RegistryDep, SettingsDep

router = APIRouter(prefix="/monitoring", tags=["monitoring"])

_MEANING = {
    403: "Only an admin key may read drift.",
    409: "Nothing to compare yet, or the bundle has no reference.",
    503: "The audit log (the drift window) is unreachable.",
}
_ERRORS = documented(401, meaning=_MEANING)


@router.get(
    "/drift",
    responses=documented(401, 422, meaning=_MEANING),
    summary="PSI of recent traffic per monitored feature",
)
async def drift(
    monitors: MonitorsDep,
    registry: RegistryDep,
    settings: SettingsDep,
    _: AdminCaller,
    refresh: bool = False,
) -> dict[str, Any]:
    """The summary the gauges show (recomputed every monitor interval); ``refresh=true`` recomputes now."""
    summary = monitors.drift
    if refresh or summary is None or summary.model_version != registry.current.version:
        try:
            summary = await monitors.refresh_drift()
        except SQLAlchemyError as exc:
            raise ApiError(
                503, "the audit log is unreachable; retry later", code="audit_unavailable"
            ) from exc
    body = summary.to_json()
    body["min_window"] = settings.drift_min_window
    return body


@router.get(
    "/drift/report",
    response_class=Response,  # not HTMLResponse: its media type would be documented for the errors too
    responses={
        200: {"description": "The report page.", "content": {"text/html": {"schema": {"type": "string"}}}},
        **_ERRORS,
    },
    summary="Evidently data-drift report of the current window",
)
async def drift_report(monitors: MonitorsDep, registry: RegistryDep, _: AdminCaller) -> HTMLResponse:
    model = registry.current
    try:
        rows = await monitors.window(model)
        html = await asyncio.to_thread(
            drift_report_html, reference_frame(model.bundle.reference), window_frame(rows)
        )
    except ReportUnavailableError as exc:
        raise ApiError(409, str(exc), code="report_unavailable") from exc
    except SQLAlchemyError as exc:
        raise ApiError(503, "the audit log is unreachable; retry later", code="audit_unavailable") from exc
    return HTMLResponse(html)
