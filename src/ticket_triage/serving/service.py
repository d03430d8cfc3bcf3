"""The running service's parts and the prediction flow: cache first, then one model pass for the misses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from fastapi import HTTPException
from sqlalchemy import Engine

from ticket_triage.audit import AuditRecord, DurableWriter, SpoolFullError
from ticket_triage.audit.records import recent_window
from ticket_triage.config import Settings
from ticket_triage.monitoring.drift import DriftSummary, compute_drift
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.review import NewReviewItem, ReviewStore
from ticket_triage.serving.batcher import Lane, MicroBatcher, TicketScoringError
from ticket_triage.serving.cache import PredictionCache, cache_key
from ticket_triage.serving.errors import ApiError
from ticket_triage.serving.gc_tuning import release_when_unused
from ticket_triage.serving.inference import LOADED_MODELS, Scores, ServingModel, cache_fields
from ticket_triage.serving.registry import ModelRegistry, ReloadError
from ticket_triage.serving.schemas import FieldError, Prediction, Ticket

log = logging.getLogger(__name__)

#: How many of the model's most likely categories a review item keeps, whatever ``top_k`` the caller asked.
REVIEW_TOP_LABELS = 5
#: Longest a request waits for its review items to be queued. Past it the answer goes out without
#: ``review_id``; the write still finishes or fails into the spool, so the items are kept either way.
REVIEW_WRITE_TIMEOUT_SECONDS = 2.0


@dataclass
class PredictionRun:
    model: ServingModel
    predictions: list[Prediction]
    cached: int


@dataclass
class Service:
    """Everything a request handler needs, built once at start-up and closed at shutdown."""

    settings: Settings
    registry: ModelRegistry
    cache: PredictionCache
    batcher: MicroBatcher
    metrics: ServiceMetrics
    reviews: ReviewStore
    writer: DurableWriter
    engine: Engine
    drift: DriftSummary | None = None
    _writes: set[asyncio.Task[None]] = field(default_factory=set)
    _release: asyncio.Task[bool] | None = None

    def threshold(self, model: ServingModel) -> float:
        """The bundle's routing threshold, unless the operator set ``TRIAGE_ROUTING_THRESHOLD``."""
        if "routing_threshold" in self.settings.model_fields_set:
            return self.settings.routing_threshold
        return model.threshold

    async def predict(self, tickets: Sequence[Ticket], top_k: int, *, endpoint: str) -> PredictionRun:
        """Answers in input order; cache hits skip the model, repeated tickets are computed once.

        Every answer routed to review (cached or not) is queued for a reviewer and carries its
        ``review_id``; when the review store cannot be written, the items go to the spool and the answers
        go out without one. Every answer is handed to the audit writer, which stores it later.
        """
        started = time.perf_counter()
        try:
            self.writer.ensure_accepting()  # refuse now what could not be kept (spool full, db down)
        except SpoolFullError as exc:
            raise _unavailable(exc) from exc
        predicted_at = datetime.now(UTC)
        model = self.registry.current  # read once: a reload mid-request cannot mix two models
        keys = [cache_key(model.version, cache_fields(t)) for t in tickets]
        found = await self.cache.get_many(keys)
        scores: list[Scores | None] = [None] * len(tickets)
        for i, value in enumerate(found):
            if value is not None:
                try:
                    scores[i] = model.scores_from_cache(value)
                except (KeyError, TypeError, ValueError):
                    log.warning("ignoring a cached entry of the wrong shape for model %s", model.version)
                    self.metrics.cache_lookups.labels(backend=self.cache.backend, result="rejected").inc()
        was_cached = [s is not None for s in scores]

        first_of: dict[str, int] = {}
        for i, key in enumerate(keys):
            if scores[i] is None:
                first_of.setdefault(key, i)
        if first_of:
            misses = list(first_of.values())
            lane: Lane = "bulk" if endpoint == "batch" else "interactive"
            try:
                computed = await self.batcher.score(model, [tickets[i] for i in misses], lane)
            except TicketScoringError as exc:
                where = f"tickets[{misses[exc.index]}]" if endpoint == "batch" else "ticket"
                raise ApiError(
                    500,
                    f"the model failed on {where}; no other request was affected",
                    code="scoring_failed",
                    fields=[FieldError(field=where, message="could not be scored")],
                ) from exc
            by_key = dict(zip(first_of, computed, strict=True))
            for i, key in enumerate(keys):
                if scores[i] is None:
                    scores[i] = by_key[key]
            self._write_behind({key: s.to_json() for key, s in by_key.items()})

        threshold = self.threshold(model)
        scored = [(t, s, c) for t, s, c in zip(tickets, scores, was_cached, strict=True) if s is not None]
        answers = [
            model.answer(t, s, top_k=top_k, threshold=threshold, cached=c, prediction_id=uuid.uuid4().hex)
            for t, s, c in scored
        ]
        for answer in answers:
            self.metrics.predictions.labels(
                category=answer.category, priority=answer.priority or "", route=answer.route
            ).inc()
            self.metrics.confidence.observe(answer.confidence)
        await self._queue_for_review(model, [(t, s) for t, s, _ in scored], answers, predicted_at)
        if self.settings.audit_enabled:
            latency_ms = (time.perf_counter() - started) * 1000.0
            self.writer.record(
                [
                    _audit_record(a, s.signals, predicted_at, latency_ms, endpoint)
                    for a, (_, s, _) in zip(answers, scored, strict=True)
                ]
            )
        return PredictionRun(model=model, predictions=answers, cached=sum(was_cached))

    async def _queue_for_review(
        self,
        model: ServingModel,
        scored: Sequence[tuple[Ticket, Scores]],
        answers: list[Prediction],
        predicted_at: datetime,
    ) -> None:
        """One store write per request for all answers routed to review; sets their ``review_id``."""
        routed = [i for i, answer in enumerate(answers) if answer.route == "review"]
        if not routed:
            return
        items = [_review_item(model, *scored[i], answers[i], predicted_at) for i in routed]
        write = asyncio.ensure_future(asyncio.to_thread(self.writer.add_review_items, items))
        try:
            # shield: a timed-out write keeps running and ends stored or spooled, never half done.
            ids = await asyncio.wait_for(asyncio.shield(write), REVIEW_WRITE_TIMEOUT_SECONDS)
        except SpoolFullError as exc:
            raise _unavailable(exc) from exc
        except TimeoutError:
            log.warning("review store slow; %d answer(s) sent without review_id", len(items))
            write.add_done_callback(lambda done: _keep_if_refused(self.writer, items, done))
            return
        for i, review_id in zip(routed, ids, strict=True):
            if review_id is not None:
                answers[i] = answers[i].model_copy(update={"review_id": review_id})

    async def reload(self, name: str | None) -> tuple[ServingModel, ServingModel]:
        """Hot reload with its metrics; raises ReloadError (the old model keeps serving)."""
        try:
            previous, current = await self.registry.reload(name, self.batcher.run_exclusive)
        except ReloadError:
            self.metrics.model_reloads.labels(outcome="refused").inc()
            raise
        self.metrics.model_reloads.labels(outcome="swapped").inc()
        self.metrics.retire_model(previous.version, previous.trained_at)
        self.metrics.set_model(current.version, current.trained_at, current.review_share_baseline())
        # Frozen now, the old model's cycles would never be collected: freeze once it is gone.
        self.metrics.models_loaded.set(len(LOADED_MODELS))
        self._release = asyncio.get_running_loop().create_task(self._free(weakref.ref(previous)))
        return previous, current

    async def _free(self, previous: weakref.ref[ServingModel]) -> bool:
        freed = await release_when_unused(previous)
        self.metrics.models_loaded.set(len(LOADED_MODELS))
        return freed

    async def released(self) -> bool:
        """Wait for the last swapped-out model to be freed (True) or given up on (False)."""
        return True if self._release is None else await self._release

    async def follow_live(self, name: str) -> bool:
        """The LIVE watcher's reload: a refusal is logged, never raised into the watcher."""
        try:
            await self.reload(name)
        except ReloadError as exc:
            log.error(
                "LIVE names %s but it cannot serve; still serving %s: %s",
                name,
                self.registry.current.version,
                exc,
            )
            return False
        return True

    async def watch_reviews(self, interval: float) -> None:
        """Keeps the review gauges current (queue depth, rolling agreement) off the request path."""
        while True:
            try:
                figures = await asyncio.to_thread(
                    self.reviews.monitor_figures, self.settings.agreement_window
                )
            except Exception as exc:  # the store may be down; the gauges keep their last values
                log.debug("review metrics poll failed: %s", exc)
            else:
                self.metrics.review_queue_depth.labels(status="pending").set(figures["pending"])
                self.metrics.review_queue_depth.labels(status="claimed").set(figures["claimed"])
                if figures["recent_agreement"] is not None:
                    self.metrics.review_agreement.set(figures["recent_agreement"])
            await asyncio.sleep(interval)

    async def refresh_drift(self) -> DriftSummary:
        """Recompute PSI on the current window (a thread: a query and some numpy) and set the gauges."""
        model = self.registry.current
        rows = await asyncio.to_thread(recent_window, self.engine, model.version, self.settings.drift_window)
        summary = await asyncio.to_thread(
            compute_drift, model.bundle.reference, rows, model.version, self.settings.drift_min_window
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

    def _write_behind(self, items: dict[str, dict[str, Any]]) -> None:
        """Store new scores after answering: the caller never waits on the cache write."""
        task = asyncio.get_running_loop().create_task(self.cache.set_many(items))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def close(self) -> None:
        if self._release is not None:
            self._release.cancel()
        if self._writes:
            with contextlib.suppress(Exception):
                await asyncio.wait(set(self._writes), timeout=2.0)
        await self.batcher.close()
        await self.cache.close()
        await asyncio.to_thread(self.writer.close)


def _unavailable(exc: SpoolFullError) -> HTTPException:
    """503 with Retry-After: the database is down and the spool full, so this answer could not be kept."""
    return HTTPException(503, str(exc), headers={"Retry-After": str(max(1, round(exc.retry_after_seconds)))})


def _keep_if_refused(writer: DurableWriter, items: list[NewReviewItem], done: asyncio.Future[Any]) -> None:
    """The answers went out without this write; if it was refused, its items must still be kept."""
    if not done.cancelled() and isinstance(done.exception(), SpoolFullError):
        writer.keep_review_items(items)


def _audit_record(
    answer: Prediction,
    signals: dict[str, float] | None,
    predicted_at: datetime,
    latency_ms: float,
    endpoint: str,
) -> AuditRecord:
    return AuditRecord(
        prediction_id=answer.prediction_id,
        predicted_at=predicted_at,
        model_version=answer.model_version,
        category=answer.category,
        confidence=answer.confidence,
        route=answer.route,
        cached=answer.cached,
        latency_ms=round(latency_ms, 3),
        endpoint=endpoint,
        ticket_id=None if answer.ticket_id is None else str(answer.ticket_id),
        priority=answer.priority,
        signals=signals,
    )


def _review_item(
    model: ServingModel, ticket: Ticket, scores: Scores, answer: Prediction, predicted_at: datetime
) -> NewReviewItem:
    """The queue's copy of one routed answer; the top labels come from the scores, not the caller's top_k."""
    probs = np.asarray(scores.category, dtype=float)
    order = np.argsort(-probs, kind="stable")[:REVIEW_TOP_LABELS]
    top = tuple((model.category_labels[int(i)], round(float(probs[i]), 6)) for i in order)
    return NewReviewItem(
        predicted_category=answer.category,
        confidence=answer.confidence,
        model_version=answer.model_version,
        top_labels=top,
        predicted_priority=answer.priority,
        ticket_id=None if ticket.ticket_id is None else str(ticket.ticket_id),
        subject=ticket.subject,
        description=ticket.description,
        created_at=ticket.created_at,
        channel=ticket.channel,
        customer_tier=ticket.customer_tier,
        urgency=ticket.urgency,
        language=ticket.language,
        metadata=ticket.metadata,
        prediction_id=answer.prediction_id,
        enqueued_at=predicted_at,
    )
