"""The running service's parts and the prediction flow: cache first, then one model pass for the misses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ticket_triage.config import Settings
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.serving.batcher import MicroBatcher
from ticket_triage.serving.cache import PredictionCache, cache_key
from ticket_triage.serving.inference import Scores, ServingModel, cache_fields
from ticket_triage.serving.registry import ModelRegistry
from ticket_triage.serving.schemas import Prediction, Ticket

log = logging.getLogger(__name__)


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
    _writes: set[asyncio.Task[None]] = field(default_factory=set)

    def threshold(self, model: ServingModel) -> float:
        """The bundle's routing threshold, unless the operator set ``TRIAGE_ROUTING_THRESHOLD``."""
        if "routing_threshold" in self.settings.model_fields_set:
            return self.settings.routing_threshold
        return model.threshold

    async def predict(self, tickets: Sequence[Ticket], top_k: int) -> PredictionRun:
        """Answers in input order; cache hits skip the model, repeated tickets are computed once."""
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
        was_cached = [s is not None for s in scores]

        first_of: dict[str, int] = {}
        for i, key in enumerate(keys):
            if scores[i] is None:
                first_of.setdefault(key, i)
        if first_of:
            computed = await self.batcher.score(model, [tickets[i] for i in first_of.values()])
            by_key = dict(zip(first_of, computed, strict=True))
            for i, key in enumerate(keys):
                if scores[i] is None:
                    scores[i] = by_key[key]
            self._write_behind({key: s.to_json() for key, s in by_key.items()})

        threshold = self.threshold(model)
        answers = [
            model.answer(t, s, top_k=top_k, threshold=threshold, cached=c)
            for t, s, c in zip(tickets, scores, was_cached, strict=True)
            if s is not None
        ]
        for answer in answers:
            self.metrics.predictions.labels(category=answer.category, route=answer.route).inc()
        return PredictionRun(model=model, predictions=answers, cached=sum(was_cached))

    def _write_behind(self, items: dict[str, dict[str, Any]]) -> None:
        """Store new scores after answering: the caller never waits on the cache write."""
        task = asyncio.get_running_loop().create_task(self.cache.set_many(items))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def close(self) -> None:
        if self._writes:
            with contextlib.suppress(Exception):
                await asyncio.wait(set(self._writes), timeout=2.0)
        await self.batcher.close()
        await self.cache.close()
