"""The prediction flow: cache first, one model pass for the misses, the answers, then review and audit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from ticket_triage.audit import AuditRecord, DurableWriter, SpoolFullError
from ticket_triage.data.canonical import TicketFields, answer_key, model_inputs
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.notify.decision import decision
from ticket_triage.route_map import RouteMap
from ticket_triage.routing import RoutingPolicy, mapped_route
from ticket_triage.serving.batcher import Lane, MicroBatcher, TicketScoringError
from ticket_triage.serving.cache import PredictionCache, cache_key
from ticket_triage.serving.errors import ApiError, unavailable
from ticket_triage.serving.inference import Scores, ServingModel
from ticket_triage.serving.registry import ModelRegistry
from ticket_triage.serving.review_intake import ReviewIntake, replayed_review_item
from ticket_triage.serving.schemas import Explanation, FieldError, Prediction, Ticket
from ticket_triage.serving.ticket_ledger import API_SOURCE, TicketLedger, TicketVersion

log = logging.getLogger(__name__)
_T = TypeVar("_T")


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
    #: Retried deliveries of a ticket version get their first answer (None: every call answers afresh).
    ledger: TicketLedger | None = None
    route_map: RouteMap | None = None
    #: Hand every new answer to the outbox (a notifier is configured).
    notify: bool = False
    _writes: set[asyncio.Task[None]] = field(default_factory=set)
    #: One explanation at a time: each is hundreds of rows of model work, and a thread running one cannot
    #: be cancelled, so callers queue here instead of piling threads onto the cores predictions need.
    _explaining: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    async def predict(
        self, tickets: Sequence[Ticket], top_k: int, *, endpoint: str, source: str = API_SOURCE
    ) -> PredictionRun:
        """Answers in input order; cache hits skip the model, repeated tickets are computed once.

        A ticket with a ``ticket_id`` whose version (``source``, id, model inputs) was answered before by
        this model gets that answer again, the same ``prediction_id`` and ``review_id``, and nothing else
        happens: a retried delivery makes no second decision (``ticket_ledger``). Every new answer routed to
        review (cached or not) is queued for a reviewer and carries its ``review_id``; a ticket with an
        id has one open item, which a new version updates. When the review store cannot be written, the
        items go to the spool and the answers go out without one. Every new answer is handed to the
        audit writer and, with a notifier, to the outbox.
        """
        started = time.perf_counter()
        try:
            self.writer.ensure_accepting()  # refuse now what could not be kept (spool full, db down)
        except SpoolFullError as exc:
            raise unavailable(exc) from exc
        predicted_at = datetime.now(UTC)
        model = self.registry.current  # read once: a reload mid-request cannot mix two models
        inputs = model_inputs(tickets)
        versions = [
            None
            if t.ticket_id is None
            else TicketVersion(source, str(t.ticket_id), answer_key(model.version, f))
            for t, f in zip(tickets, inputs, strict=True)
        ]
        # Answers are made and kept with every label's probability; each caller sees its own top_k.
        replayed = await self._replayed(versions)
        if replayed:
            await self._hand_in_again(tickets, replayed, predicted_at, endpoint, source)
        answers = {i: _shown(a, top_k, replayed=True) for i, a in replayed.items()}
        cached = len(answers)
        fresh = [i for i in range(len(tickets)) if i not in answers]
        if fresh:
            new, hits = await self._answer_fresh(
                model, [tickets[i] for i in fresh], [inputs[i] for i in fresh], endpoint, source
            )
            cached += hits
            kept = await self._claim(
                [(versions[i], new[n][0]) for n, i in enumerate(fresh) if versions[i] is not None],
                predicted_at,
            )
            own: list[tuple[int, Scores]] = []
            for n, i in enumerate(fresh):
                answer, scores = new[n]
                version = versions[i]
                stored = kept.get(version) if version is not None else None
                if stored is not None and stored.prediction_id != answer.prediction_id:
                    answers[i] = _shown(stored, top_k, replayed=True)  # another delivery answered first
                    cached += 1
                else:
                    answers[i] = _shown(answer, top_k, replayed=False)
                    own.append((i, scores))
            await self._after_answering(model, tickets, inputs, versions, own, answers, predicted_at, source)
            # A version sent twice in this request: the second copy gets the first's review_id too.
            mine = {answers[i].prediction_id: answers[i] for i, _ in own}
            for i in fresh:
                first = mine.get(answers[i].prediction_id)
                if first is not None and first is not answers[i]:
                    answers[i] = first.model_copy(update={"cached": True})
            if self.audit_enabled:
                latency_ms = (time.perf_counter() - started) * 1000.0
                self.writer.record(
                    [audit_record(answers[i], s.signals, predicted_at, latency_ms, endpoint) for i, s in own]
                )
        return PredictionRun(
            model=model, predictions=[answers[i] for i in range(len(tickets))], cached=cached
        )

    async def _answer_fresh(
        self,
        model: ServingModel,
        tickets: list[Ticket],
        inputs: list[dict[str, Any]],
        endpoint: str,
        source: str,
    ) -> tuple[list[tuple[Prediction, Scores]], int]:
        """New answers over every label (cache, then one model pass for the misses), route map applied."""
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
        done = [s for s in scores if s is not None]
        sets = model.prediction_sets(done, self.routing)
        rows = sets if sets is not None else [None] * len(done)
        out = []
        for t, s, c, row in zip(tickets, done, was_cached, rows, strict=True):
            answer = model.answer(
                t, s, top_k=0, routing=self.routing, cached=c, prediction_id=uuid.uuid4().hex, set_row=row
            )
            out.append((self._destined(answer, source), s))
        return out, sum(was_cached)

    def _destined(self, answer: Prediction, source: str) -> Prediction:
        """The helpdesk's queue id for the category; with a map in force, unmapped labels go to review."""
        if self.route_map is None:
            return answer
        queue_id = self.route_map.queue_for(source, answer.category)
        route = mapped_route(answer.route, queue_id, map_in_force=True)
        return answer.model_copy(update={"queue_id": queue_id, "route": route})

    async def _after_answering(
        self,
        model: ServingModel,
        tickets: Sequence[Ticket],
        inputs: list[dict[str, Any]],
        versions: list[TicketVersion | None],
        own: list[tuple[int, Scores]],
        answers: dict[int, Prediction],
        predicted_at: datetime,
        source: str,
    ) -> None:
        """Metrics, review queue, the ledger's review ids and the outbox, for this request's own answers."""
        mine = [answers[i] for i, _ in own]
        for answer in mine:
            self.metrics.predictions.labels(
                category=answer.category, priority=answer.priority or "", route=answer.route
            ).inc()
            self.metrics.confidence.observe(answer.confidence)
        scored = [(tickets[i], s, inputs[i]) for i, s in own]
        await self.intake.queue(model, scored, mine, predicted_at, source=source)
        reviewed = []
        for (i, _), answer in zip(own, mine, strict=True):
            answers[i] = answer
            version = versions[i]
            if version is not None and answer.review_id is not None:
                reviewed.append((version, answer.prediction_id, answer.review_id))
        if reviewed and self.ledger is not None:
            await self._ledger_call(self.ledger.set_review_ids, reviewed)
        if self.notify:
            self.writer.notify([decision(answer, source, predicted_at) for answer in mine])

    async def _hand_in_again(
        self,
        tickets: Sequence[Ticket],
        replayed: dict[int, Prediction],
        now: datetime,
        endpoint: str,
        source: str,
    ) -> None:
        """A replayed answer's review item, audit record and notification, handed in once more.

        The ledger keeps an answer before the rest of its request is durable, so a process killed in
        between (a broker redelivers its messages) would leave the answer without them. Every store
        skips a ``prediction_id`` it holds, so handing them in again keeps each exactly once.
        """
        answers = [replayed[i] for i in sorted(replayed)]
        items = [
            replayed_review_item(tickets[i], replayed[i], source, now)
            for i in sorted(replayed)
            if replayed[i].route == "review"
        ]
        if items:
            await self.intake.queue_items(items)
        if self.audit_enabled:
            self.writer.record([audit_record(a, None, now, 0.0, endpoint) for a in answers])
        if self.notify:
            self.writer.notify([decision(a, source, now) for a in answers])

    async def _replayed(self, versions: list[TicketVersion | None]) -> dict[int, Prediction]:
        """Answers already given to these ticket versions, by position."""
        wanted = [v for v in versions if v is not None]
        if self.ledger is None or not wanted:
            return {}
        found = await self._ledger_call(self.ledger.find, wanted)
        if found is None:
            return {}
        out = {}
        for i, version in enumerate(versions):
            if version is not None and version in found:
                out[i] = Prediction.model_validate(found[version])
        self.metrics.ticket_answers.labels(result="replayed").inc(len(out))
        return out

    async def _claim(
        self, answers: list[tuple[TicketVersion | None, Prediction]], now: datetime
    ) -> dict[TicketVersion, Prediction]:
        """Store this request's answers as their versions' answers; returns the answer kept per version."""
        pairs = [(v, a.model_dump(mode="json")) for v, a in answers if v is not None]
        if self.ledger is None or not pairs:
            return {}
        kept = await self._ledger_call(self.ledger.claim, pairs, now)
        if kept is None:
            return {}
        self.metrics.ticket_answers.labels(result="new").inc(len(pairs))
        return {v: Prediction.model_validate(a) for v, a in kept.items()}

    async def _ledger_call(self, method: Callable[..., _T], *args: Any) -> _T | None:
        """The ledger is a guard, not a dependency: when the database fails, answer without it."""
        try:
            return await asyncio.to_thread(method, *args)
        except Exception as exc:
            log.warning("ticket ledger unavailable (%s); answering without retry detection", exc)
            self.metrics.ticket_answers.labels(result="ledger_error").inc()
            return None

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


def _shown(answer: Prediction, top_k: int, *, replayed: bool) -> Prediction:
    """An answer as one caller asked for it: its ``top_k`` most likely labels (0: all); a replayed answer
    (from the ticket ledger) says ``cached``, since nothing was computed for it."""
    update: dict[str, Any] = {}
    if top_k and len(answer.probabilities) > top_k:
        update["probabilities"] = answer.probabilities[:top_k]
    if replayed:
        update["cached"] = True
    return answer.model_copy(update=update) if update else answer


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
