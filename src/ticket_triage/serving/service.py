"""The running service: the parts request handlers are given, built once at start-up and closed at shutdown.

Each part has one job, in a module named after it: ``prediction_flow`` (cache, model pass, answers,
audit), ``ticket_ledger`` (one answer per ticket version), ``review_intake`` (routed answers into the
queue), ``notify`` (decisions pushed to the helpdesk's URL), ``monitoring_pollers`` (review and drift
gauges) and ``registry`` (which model serves: hot reload, following LIVE). Routes receive the parts
through the ``Annotated`` dependencies in ``routes/deps.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from ticket_triage.audit import DurableWriter
from ticket_triage.config import Settings
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.notify.delivery import Notifier
from ticket_triage.review import ReviewStore
from ticket_triage.route_map import RouteMap
from ticket_triage.routing import RoutingPolicy
from ticket_triage.serving.batcher import MicroBatcher
from ticket_triage.serving.cache import PredictionCache
from ticket_triage.serving.inference import ServingModel
from ticket_triage.serving.monitoring_pollers import MonitoringPollers
from ticket_triage.serving.prediction_flow import PredictionFlow
from ticket_triage.serving.registry import ModelRegistry
from ticket_triage.serving.review_intake import ReviewIntake
from ticket_triage.serving.ticket_ledger import TicketLedger


@dataclass
class Service:
    settings: Settings
    metrics: ServiceMetrics
    registry: ModelRegistry
    cache: PredictionCache
    batcher: MicroBatcher
    writer: DurableWriter
    reviews: ReviewStore
    predictions: PredictionFlow
    monitors: MonitoringPollers
    ledger: TicketLedger | None = None
    notifier: Notifier | None = None

    @classmethod
    def assemble(
        cls,
        settings: Settings,
        metrics: ServiceMetrics,
        model: ServingModel,
        models_dir: Path,
        *,
        cache: PredictionCache,
        batcher: MicroBatcher,
        writer: DurableWriter,
        reviews: ReviewStore,
        engine: Engine,
        onnx_dir: Path | None = None,
        ledger: TicketLedger | None = None,
        route_map: RouteMap | None = None,
        notifier: Notifier | None = None,
    ) -> Service:
        """Wire the parts; each is given what it needs as arguments."""
        routing = RoutingPolicy.from_settings(settings)
        registry = ModelRegistry(
            model,
            models_dir,
            scorer=batcher.run_exclusive,
            metrics=metrics,
            routing=routing,
            onnx_dir=onnx_dir,
        )
        predictions = PredictionFlow(
            registry=registry,
            cache=cache,
            batcher=batcher,
            writer=writer,
            intake=ReviewIntake(writer),
            metrics=metrics,
            routing=routing,
            audit_enabled=settings.audit_enabled,
            ledger=ledger,
            route_map=route_map,
            notify=notifier is not None,
        )
        monitors = MonitoringPollers(
            registry=registry,
            reviews=reviews,
            engine=engine,
            metrics=metrics,
            agreement_window=settings.agreement_window,
            drift_window=settings.drift_window,
            drift_min_window=settings.drift_min_window,
        )
        return cls(
            settings=settings,
            metrics=metrics,
            registry=registry,
            cache=cache,
            batcher=batcher,
            writer=writer,
            reviews=reviews,
            predictions=predictions,
            monitors=monitors,
            ledger=ledger,
            notifier=notifier,
        )

    async def close(self) -> None:
        self.registry.close()
        await self.predictions.close()
        await self.batcher.close()
        await self.cache.close()
        await asyncio.to_thread(self.writer.close)  # the outbox gets what was still in memory
        if self.notifier is not None:
            await self.notifier.close()
