"""The monitoring pollers: review-queue and drift gauges kept current off the request path."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from ticket_triage.audit.records import WindowRow, recent_window
from ticket_triage.monitoring.drift import DriftSummary, compute_drift
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.review import ReviewStore
from ticket_triage.serving.inference import ServingModel
from ticket_triage.serving.registry import ModelRegistry

log = logging.getLogger(__name__)


@dataclass
class MonitoringPollers:
    """Polls the review store and the audit log's drift window; the last drift summary stays readable."""

    registry: ModelRegistry
    reviews: ReviewStore
    engine: Engine
    metrics: ServiceMetrics
    agreement_window: int
    drift_window: int
    drift_min_window: int
    drift: DriftSummary | None = None

    async def watch_reviews(self, interval: float) -> None:
        """Keeps the review gauges current (queue depth, rolling agreement)."""
        while True:
            try:
                figures = await asyncio.to_thread(self.reviews.monitor_figures, self.agreement_window)
            except Exception as exc:  # the store may be down; the gauges keep their last values
                log.debug("review metrics poll failed: %s", exc)
            else:
                self.metrics.review_queue_depth.labels(status="pending").set(figures["pending"])
                self.metrics.review_queue_depth.labels(status="claimed").set(figures["claimed"])
                if figures["recent_agreement"] is not None:
                    self.metrics.review_agreement.set(figures["recent_agreement"])
            await asyncio.sleep(interval)

    async def window(self, model: ServingModel) -> list[WindowRow]:
        """The audit rows drift is measured on: the model's most recent answers (a query: a thread)."""
        return await asyncio.to_thread(recent_window, self.engine, model.version, self.drift_window)

    async def refresh_drift(self) -> DriftSummary:
        """Recompute PSI on the current window (a thread: a query and some numpy) and set the gauges."""
        model = self.registry.current
        rows = await self.window(model)
        summary = await asyncio.to_thread(
            compute_drift, model.bundle.reference, rows, model.version, self.drift_min_window
        )
        m = self.metrics
        m.drift_window_size.set(summary.window)
        for name, value in summary.features.items():
            m.drift_psi.labels(feature=name).set(value)
        if summary.prediction is not None:
            m.prediction_drift_psi.set(summary.prediction)
        if summary.confidence is not None:
            m.confidence_drift_psi.set(summary.confidence)
        for threshold, count in summary.over.items():
            m.drift_features_over.labels(threshold=threshold).set(count)
        self.drift = summary
        return summary

    async def watch_drift(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh_drift()
            except Exception as exc:  # the database may be down; the gauges keep their last values
                log.debug("drift refresh failed: %s", exc)
