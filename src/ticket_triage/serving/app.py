"""The FastAPI app factory: one place that wires settings, keys, model, cache and batcher together."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticket_triage import __version__
from ticket_triage.audit import DurableWriter, Spool
from ticket_triage.config import Settings
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.review import ReviewStore, make_engine, migrate
from ticket_triage.routing import RoutingPolicy
from ticket_triage.serving.auth import KeyStore, startup_key_store
from ticket_triage.serving.batcher import MicroBatcher
from ticket_triage.serving.body_limit import BodyLimitMiddleware
from ticket_triage.serving.cache import build_cache
from ticket_triage.serving.entity_worker import EntityWorker
from ticket_triage.serving.errors import install_error_handlers
from ticket_triage.serving.gc_tuning import freeze_loaded_objects, shorten_switch_interval
from ticket_triage.serving.inference import SMOKE_TICKET
from ticket_triage.serving.registry import load_serving_model, models_dir_of
from ticket_triage.serving.routes import admin, health, monitoring, predict, reviews, ui
from ticket_triage.serving.service import Service

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


def _one_torch_thread() -> None:
    """Each pass runs the encoder members on a helper thread beside the pipeline: one torch thread each."""
    import torch

    torch.set_num_threads(1)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: ServiceMetrics = app.state.metrics
    _one_torch_thread()
    shorten_switch_interval()
    onnx_dir = settings.onnx_dir if settings.encoder_runtime == "onnx" else None
    model = await asyncio.to_thread(load_serving_model, settings.models_dir, onnx_dir)
    model.check_routing(RoutingPolicy.from_settings(settings))
    cache = build_cache(settings, metrics)
    batcher = MicroBatcher(
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
        max_bulk_size=settings.max_bulk_size,
        max_pass_chars=settings.max_pass_chars,
        metrics=metrics,
        entities=EntityWorker() if settings.entity_process else None,
    )
    batcher.start()
    # Warm-up: the first pass loads spaCy and MiniLM; pay that before the first caller does.
    await batcher.run_exclusive(model, [SMOKE_TICKET])
    freeze_loaded_objects()
    engine = make_engine(settings)
    prepare: Callable[[], None] | None = None
    try:
        await asyncio.to_thread(migrate, engine)
    except Exception as exc:
        # Predictions matter more than the queue: serve now, spool review items and audit records, and
        # let the writer migrate and replay once the database answers.
        log.error("database unavailable at start-up (%s); spooling until it answers", exc)
        prepare = partial(migrate, engine)
    reviews = ReviewStore(engine, lease_seconds=settings.review_lease_seconds)
    writer = DurableWriter(
        engine,
        reviews,
        Spool(settings.spool_dir),
        batch_size=settings.audit_batch_size,
        flush_seconds=settings.audit_flush_ms / 1000.0,
        queue_max=settings.audit_queue_max,
        retry_seconds=settings.spool_retry_seconds,
        retention_days=settings.audit_retention_days,
        metrics=metrics,
        prepare=prepare,
    )
    writer.start()
    service = Service.assemble(
        settings,
        metrics,
        model,
        models_dir_of(settings.models_dir),
        cache=cache,
        batcher=batcher,
        writer=writer,
        reviews=reviews,
        engine=engine,
        onnx_dir=onnx_dir,
    )
    app.state.service = service
    log.info("serving model %s with a %s cache", model.version, cache.backend)
    del model  # the registry owns it now; a reference kept here would outlive every hot reload
    interval = settings.monitor_interval_seconds
    background = [
        asyncio.create_task(service.monitors.watch_reviews(interval)),
        asyncio.create_task(service.monitors.watch_drift(interval)),
    ]
    if settings.model_watch_seconds > 0:
        background.append(await service.registry.watch_live(settings.model_watch_seconds))
    try:
        yield
    finally:
        for task in background:
            task.cancel()
        try:
            await service.close()
        finally:
            engine.dispose()


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
    app.include_router(health.router)
    app.include_router(admin.router)
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
