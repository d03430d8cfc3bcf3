"""The prediction flow: cache first, one model pass for the misses, the answers, then review and audit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ticket_triage.audit import AuditRecord, DurableWriter, SpoolFullError
from ticket_triage.data.canonical import TicketFields, model_inputs
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.routing import RoutingPolicy
from ticket_triage.serving.batcher import Lane, MicroBatcher, TicketScoringError
from ticket_triage.serving.cache import PredictionCache, cache_key
from ticket_triage.serving.errors import ApiError, unavailable
from ticket_triage.serving.inference import Scores, ServingModel
from ticket_triage.serving.registry import ModelRegistry
from ticket_triage.serving.review_intake import ReviewIntake
from ticket_triage.serving.schemas import Explanation, FieldError, Prediction, Ticket

log = logging.getLogger(__name__)


@dataclass
class PredictionRun:
    model: ServingModel
    predictions: list[Prediction]
    cached: int


@dataclass
class PredictionFlow:
    """Answers tickets with the registry's current model; owns the cache's write-behind tasks."""

    registry: ModelRegistry
    cache: PredictionCache
    batcher: MicroBatcher
    writer: DurableWriter
    intake: ReviewIntake
    metrics: ServiceMetrics
    routing: RoutingPolicy
    audit_enabled: bool = True
    _writes: set[asyncio.Task[None]] = field(default_factory=set)
    #: One explanation at a time: each is hundreds of rows of model work, and a thread running one cannot
    #: be cancelled, so callers queue here instead of piling threads onto the cores predictions need.
    _explaining: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

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
            raise unavailable(exc) from exc
        predicted_at = datetime.now(UTC)
        model = self.registry.current  # read once: a reload mid-request cannot mix two models
        inputs = model_inputs(tickets)
        keys = [cache_key(model.version, fields) for fields in inputs]
        scores = await self._cached(model, keys)
        was_cached = [s is not None for s in scores]

        first_of: dict[str, int] = {}
        for i, key in enumerate(keys):
            if scores[i] is None:
                first_of.setdefault(key, i)
        if first_of:
            by_key = await self._compute(model, tickets, first_of, endpoint)
            for i, key in enumerate(keys):
                if scores[i] is None:
                    scores[i] = by_key[key]
            self._write_behind({key: s.to_json() for key, s in by_key.items()})

        scored = [
            (t, s, fields, c)
            for t, s, fields, c in zip(tickets, scores, inputs, was_cached, strict=True)
            if s is not None
        ]
        sets = model.prediction_sets([s for _, s, _, _ in scored], self.routing)
        rows = sets if sets is not None else [None] * len(scored)
        answers = [
            model.answer(
                t, s, top_k=top_k, routing=self.routing, cached=c, prediction_id=uuid.uuid4().hex, set_row=row
            )
            for (t, s, _, c), row in zip(scored, rows, strict=True)
        ]
        for answer in answers:
            self.metrics.predictions.labels(
                category=answer.category, priority=answer.priority or "", route=answer.route
            ).inc()
            self.metrics.confidence.observe(answer.confidence)
        await self.intake.queue(model, [(t, s, fields) for t, s, fields, _ in scored], answers, predicted_at)
        if self.audit_enabled:
            latency_ms = (time.perf_counter() - started) * 1000.0
            self.writer.record(
                [
                    audit_record(a, s.signals, predicted_at, latency_ms, endpoint)
                    for a, (_, s, _, _) in zip(answers, scored, strict=True)
                ]
            )
        return PredictionRun(model=model, predictions=answers, cached=sum(was_cached))

    async def explain(
        self, model: ServingModel, ticket: TicketFields, *, top_words: int, max_evals: int
    ) -> Explanation:
        """``model.explain`` on a worker thread, one at a time, timed in ``triage_explain_seconds``."""
        async with self._explaining:
            started = time.perf_counter()
            try:
                return await asyncio.to_thread(
                    model.explain, ticket, top_words=top_words, max_evals=max_evals
                )
            finally:
                self.metrics.explain_seconds.observe(time.perf_counter() - started)

    async def _cached(self, model: ServingModel, keys: list[str]) -> list[Scores | None]:
        """Scores found in the cache; an entry of the wrong shape for this model counts as rejected."""
        found = await self.cache.get_many(keys)
        scores: list[Scores | None] = [None] * len(keys)
        for i, value in enumerate(found):
            if value is not None:
                try:
                    scores[i] = model.scores_from_cache(value)
                except (KeyError, TypeError, ValueError):
                    log.warning("ignoring a cached entry of the wrong shape for model %s", model.version)
                    self.metrics.cache_lookups.labels(backend=self.cache.backend, result="rejected").inc()
        return scores

    async def _compute(
        self, model: ServingModel, tickets: Sequence[Ticket], first_of: dict[str, int], endpoint: str
    ) -> dict[str, Scores]:
        """One model pass over the first ticket of each missing key."""
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
        return dict(zip(first_of, computed, strict=True))

    def _write_behind(self, items: dict[str, dict[str, Any]]) -> None:
        """Store new scores after answering: the caller never waits on the cache write."""
        task = asyncio.get_running_loop().create_task(self.cache.set_many(items))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def close(self) -> None:
        """Let the cache writes still running finish (briefly)."""
        if self._writes:
            with contextlib.suppress(Exception):
                await asyncio.wait(set(self._writes), timeout=2.0)


def audit_record(
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
