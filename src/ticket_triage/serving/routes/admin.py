"""Operator actions: hot reload of the model."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ticket_triage.serving.errors import ApiError, documented
from ticket_triage.serving.registry import BundleNotFoundError, ReloadError
from ticket_triage.serving.routes.deps import AdminCaller, RegistryDep
from ticket_triage.serving.schemas import RequestModel, ShortText

router = APIRouter(prefix="/admin", tags=["admin"])


class ReloadRequest(RequestModel):
    bundle: ShortText | None = Field(
        None, description="Folder name of a bundle in the models folder; omit for the one marked live."
    )


class ReloadResponse(BaseModel):
    previous_version: str
    model_version: str
    changed: bool


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses=documented(
        401,
        413,
        422,
        meaning={
            403: "Only an admin key may reload.",
            404: "No bundle of that name in the models folder.",
            409: "The bundle was refused; the old model serves.",
        },
    ),
    summary="Swap to another model without a restart",
)
async def reload_model(
    registry: RegistryDep, _: AdminCaller, request: ReloadRequest | None = None
) -> ReloadResponse:
    """Load beside the live model, smoke-test, then swap; in-flight requests finish on the old one."""
    name = request.bundle if request else None
    try:
        previous, current = await registry.reload(name)
    except BundleNotFoundError as exc:
        raise ApiError(404, str(exc), code="bundle_not_found") from exc
    except ReloadError as exc:
        raise ApiError(409, str(exc), code="bundle_refused") from exc
    return ReloadResponse(
        previous_version=previous.version,
        model_version=current.version,
        changed=previous.version != current.version,
    )
