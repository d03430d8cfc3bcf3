"""The FastAPI app factory: one place that wires settings, keys, model, cache and batcher together."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticket_triage import __version__
from ticket_triage.config import Settings
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.serving.assembly import running_service
from ticket_triage.serving.auth import KeyStore, startup_key_store
from ticket_triage.serving.body_limit import BodyLimitMiddleware
from ticket_triage.serving.errors import install_error_handlers
from ticket_triage.serving.routes import (
    admin,
    health,
    integrations,
    monitoring,
    notifications,
    predict,
    reviews,
    ui,
)

log = logging.getLogger(__name__)


class RequestMetricsMiddleware:
    """Counts and times every request by route template and status (plain ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            labels = {"route": path, "method": scope.get("method", ""), "status": str(status)}
            self.metrics.requests.labels(**labels).inc()
            self.metrics.latency.labels(**labels).observe(time.perf_counter() - started)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with running_service(app.state.settings, app.state.metrics) as service:
        app.state.service = service
        yield


def create_app(settings: Settings | None = None, *, keys: KeyStore | None = None) -> FastAPI:
    """A ready-to-serve app; refuses to build without API keys unless auth is disabled."""
    settings = settings or Settings()
    if keys is None:
        keys, _ = startup_key_store(
            env_spec=settings.api_keys, key_file=settings.api_key_file, auth_disabled=settings.auth_disabled
        )
    metrics = ServiceMetrics()
    app = FastAPI(
        title="Ticket Triage",
        version=__version__,
        summary="Routes helpdesk tickets to a queue with a priority and a calibrated confidence.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.keys = keys
    app.state.auth_disabled = settings.auth_disabled
    install_error_handlers(app)
    app.include_router(predict.router)
    app.include_router(integrations.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(notifications.router)
    app.include_router(reviews.router)
    app.include_router(monitoring.router)
    app.include_router(ui.router)

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
    )
    async def prometheus_metrics() -> Response:
        body, media_type = metrics.exposition()
        return Response(body, media_type=media_type)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    return app


def create_app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory`` (each worker process builds its app from the environment)."""
    return create_app(Settings())
