"""Liveness, readiness and the model card: what orchestrators and operators poll."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ticket_triage.serving.errors import documented
from ticket_triage.serving.routes.deps import AnyCaller, BatcherDep, CacheDep, RegistryDep

router = APIRouter(tags=["health"])


@router.get("/livez", summary="The process is alive")
async def livez() -> dict[str, str]:
    """Answers from the event loop alone: slow only if the loop itself is blocked."""
    return {"status": "alive"}


@router.get("/readyz", summary="Ready to serve, per dependency")
async def readyz(registry: RegistryDep, cache: CacheDep, batcher: BatcherDep) -> JSONResponse:
    """A cache outage reads as degraded, not unready: requests are still answered without the cache."""
    model = registry.current
    cache_ok = await cache.ping()
    checks: dict[str, Any] = {
        "model": {"ok": True, "version": model.version},
        "cache": {**cache.status(), "ok": cache_ok},
        "inference": {"ok": True, "queued_tickets": batcher.queued},
    }
    status = "ready" if cache_ok else "degraded"
    return JSONResponse({"status": status, "checks": checks}, status_code=200)


@router.get(
    "/model",
    responses=documented(401, 403),
    summary="Which model answers, and how good it was on held-out data",
)
async def model_card(registry: RegistryDep, _: AnyCaller) -> dict[str, Any]:
    return registry.current.describe()
