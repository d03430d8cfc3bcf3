"""One loaded bundle as the service sees it: tickets in, calibrated scores out, and the answer's shape.

Scores (full probability vectors) are what the cache stores; the answer (top-k, route) is cut from them
per request, so ``top_k`` and the routing threshold never split the cache.
"""

from __future__ import annotations

import json
import math
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ticket_triage.data.canonical import TicketFields, field_span, tickets_frame
from ticket_triage.features.base import FeatureSet, normalize_whitespace
from ticket_triage.models.bundle import EVALUATION_DIR, Bundle, load_reference_pca
from ticket_triage.models.predictor import CATEGORY, PRIORITY, explain_row, predict_probas, set_labels
from ticket_triage.monitoring.drift import SignalExtractor
from ticket_triage.routing import RoutingPolicy, sole_label
from ticket_triage.serving.entity_worker import EntityWorker
from ticket_triage.serving.schemas import EvidenceWord, Explanation, LabelProbability, Prediction, Ticket
from ticket_triage.serving.schemas import LabelEvidence as SchemaEvidence

#: The ticket a new bundle must answer before it may serve (hot reload's smoke test).
SMOKE_TICKET = Ticket(
    subject="Card payment declined",
    description="My card was declined at the shop this morning although my balance is fine. Please help.",
    created_at=datetime(2026, 1, 6, 10, 30, tzinfo=UTC),
    channel="email",
    customer_tier="standard",
)


@dataclass(frozen=True)
class Scores:
    """Calibrated probabilities over every label of each target, in the bundle's label order."""

    category: list[float]
    priority: list[float] | None = None
    #: The ticket's monitored feature values (drift window); cached with the scores.
    signals: dict[str, float] | None = None
    #: Each tag's probability, in the tag model's order (bundles trained with --tags).
    tags: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "priority": self.priority,
            "signals": self.signals,
            "tags": self.tags,
        }

    @classmethod
    def from_json(
        cls, value: dict[str, Any], n_category: int, n_priority: int | None, n_tags: int | None = None
    ) -> Scores:
        """Rebuild cached scores, refusing any whose shape does not match the serving model."""
        tags = value.get("tags")
        if (tags is None) != (n_tags is None) or (tags is not None and len(tags) != n_tags):
            raise ValueError("cached tag scores do not match the serving model's tags")
        if tags is not None:
            tags = [float(p) for p in tags]
            if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in tags):
                raise ValueError("cached tag scores are not probabilities")
        category = [float(p) for p in value["category"]]
        priority = value.get("priority")
        signals = value.get("signals")
        if signals is not None:
            signals = {str(k): float(v) for k, v in signals.items()}
        if len(category) != n_category:
            raise ValueError("cached category scores have the wrong length")
        if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in category):
            raise ValueError("cached category scores are not probabilities")
        if n_priority is None:
            return cls(category=category, signals=signals, tags=tags)
        if priority is None or len(priority) != n_priority:
            raise ValueError("cached priority scores have the wrong length")
        priority = [float(p) for p in priority]
        if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in priority):
            raise ValueError("cached priority scores are not probabilities")
        return cls(category=category, priority=priority, signals=signals, tags=tags)


#: Up to this many tickets a pass runs the encoder in ONNX Runtime (float32, about 6 ms for one ticket
#: against 10 in eager torch); larger passes use torch, faster per ticket in bulk (measured at 256
#: tickets: 143 tickets/s with torch against 123 with ONNX Runtime).
ONNX_MAX_ROWS = 16


#: Every ServingModel still in memory; a swapped-out one should leave it soon after a reload.
LOADED_MODELS: weakref.WeakSet[ServingModel] = weakref.WeakSet()


class ServingModel:
    """A bundle wrapped for the service; immutable once built, so swapping the reference is atomic."""

    def __init__(self, bundle: Bundle, onnx_dir: Path | None = None) -> None:
        """``onnx_dir``: run the encoder through ONNX Runtime, its exported graph cached there."""
        if CATEGORY not in bundle.targets:
            name = CATEGORY.value
            raise ValueError(f"bundle {bundle.version} has no {name!r} target; it cannot route tickets")
        self.bundle = bundle
        self.version = bundle.version
        self.threshold = bundle.threshold
        self.routing = bundle.routing
        self._category = bundle.targets[CATEGORY]
        self.category_labels: list[str] = list(bundle.targets[CATEGORY].labels)
        priority = bundle.targets.get(PRIORITY)
        self.priority_labels: list[str] | None = None if priority is None else list(priority.labels)
        self.signals = SignalExtractor(bundle.reference, load_reference_pca(bundle.path))
        self._fast_encoder: Callable[[pd.DataFrame], Any] | None = None
        encoder = bundle.pipeline.encoder()
        if onnx_dir is not None and encoder is not None and hasattr(encoder[1], "onnx_encode"):
            self._fast_encoder = encoder[1].onnx_encode(Path(onnx_dir) / self.version)
        LOADED_MODELS.add(self)

    def score(
        self,
        tickets: Sequence[Ticket],
        helper: Executor | None = None,
        entities: EntityWorker | None = None,
    ) -> list[Scores]:
        """One vectorised pass over every ticket (CPU-bound: run it off the event loop).

        With a ``helper`` thread the sentence encoder (one forward pass for the embeddings and the "bert"
        member's scores) runs on it while this thread computes the other feature families; with an
        ``entities`` worker, spaCy's features are computed in that process at the same time.
        """
        if not tickets:
            return []
        frame = tickets_frame(tickets)
        if helper is None:
            features, probas = predict_probas(self.bundle, frame)
        else:
            features, probas = self._probas_in_parallel(frame, helper, entities)
        category = probas[CATEGORY].astype(float)
        priority = probas.get(PRIORITY)
        signals = self.signals.extract(features)
        tags = None if self.bundle.tags is None else self.bundle.tags.predict_proba(features)
        return [
            Scores(
                category=category[i].tolist(),
                priority=None if priority is None else priority[i].astype(float).tolist(),
                signals=signals[i],
                tags=None if tags is None else tags[i].tolist(),
            )
            for i in range(len(tickets))
        ]

    def _probas_in_parallel(
        self, frame: pd.DataFrame, helper: Executor, entities: EntityWorker | None
    ) -> tuple[FeatureSet, dict[str, np.ndarray]]:
        """As ``predict_probas``, with the parts the model objects allow moved off this thread."""
        normalized = normalize_whitespace(frame)
        pipeline = self.bundle.pipeline
        moved: dict[str, Future[Any]] = {}
        if entities is not None:
            for name, family in pipeline.worker_process_families():
                moved[name] = entities.submit(family, normalized)
        encoder = pipeline.encoder()
        if encoder is not None:
            name, family = encoder
            small = len(normalized) <= ONNX_MAX_ROWS
            encode = self._fast_encoder if small and self._fast_encoder is not None else family.encode
            moved[name] = helper.submit(encode, normalized)
        features = pipeline.transform(normalized, moved)
        out = {name: target.predict_proba(features, helper) for name, target in self.bundle.targets.items()}
        return features, out

    def explain(self, ticket: TicketFields, *, top_words: int, max_evals: int) -> Explanation:
        """The words behind the predicted category and the runner-up (CPU-bound: off the event loop).

        Runs the whole model in this thread over ``max_evals`` masked copies of the ticket, beside the
        batcher, not through it: an explanation is one caller's opt-in cost and must not hold a pass.
        """
        row = tickets_frame([ticket])
        fields = [("subject", ticket.subject), ("description", ticket.description)]
        labels = []
        for evidence in explain_row(self.bundle, row, top_words=top_words, max_evals=max_evals):
            words = []
            for w in evidence.words:
                where = field_span(fields, w.start, w.end)
                if where is not None:
                    name, start, end = where
                    words.append(EvidenceWord(word=w.word, field=name, start=start, end=end, weight=w.weight))
            labels.append(SchemaEvidence(label=evidence.label, probability=evidence.probability, words=words))
        return Explanation(labels=labels)

    def _tags(self, scores: Scores) -> list[LabelProbability] | None:
        model = self.bundle.tags
        if model is None or scores.tags is None:
            return None
        chosen = model.chosen(np.asarray(scores.tags))
        return [LabelProbability(label=tag, probability=round(p, 6)) for tag, p in chosen]

    def prediction_sets(self, scores: Sequence[Scores], routing: RoutingPolicy) -> list[np.ndarray] | None:
        """Each answer's conformal set (a boolean row per answer) in one pass: per ticket, crepes costs
        ~1 ms for 77 labels; batched, ~0.3 ms. None for a bundle without conformal calibration."""
        if not scores or self._category.conformal is None:
            return None
        probs = np.asarray([s.category for s in scores], dtype=np.float64)
        sets = self._category.prediction_sets(probs, routing.alpha(self.routing))
        return None if sets is None else list(sets)

    def check_routing(self, routing: RoutingPolicy) -> None:
        """Refuse (ValueError) a routing rule this bundle cannot apply, before any ticket meets it."""
        self.bundle.check_routing(routing)

    def scores_from_cache(self, value: dict[str, Any]) -> Scores:
        n_priority = None if self.priority_labels is None else len(self.priority_labels)
        n_tags = None if self.bundle.tags is None else len(self.bundle.tags.tags)
        return Scores.from_json(value, len(self.category_labels), n_priority, n_tags)

    def answer(
        self,
        ticket: Ticket,
        scores: Scores,
        *,
        top_k: int,
        routing: RoutingPolicy,
        cached: bool,
        prediction_id: str,
        set_row: np.ndarray | None = None,
    ) -> Prediction:
        """The API answer for one ticket; ``top_k=0`` lists every label. ``set_row``: the ticket's row of
        :meth:`prediction_sets`, when the caller computed the sets of many answers at once."""
        probs = np.asarray(scores.category)
        order = np.argsort(-probs, kind="stable")
        best = int(order[0])
        shown = order if top_k == 0 else order[:top_k]
        confidence = float(probs[best])
        if set_row is None:
            [set_row] = self.prediction_sets([scores], routing) or [None]
        in_set = None if set_row is None else set_labels(self.category_labels, set_row, probs)
        sole = None if set_row is None else bool(sole_label(set_row[None, :], np.array([best]))[0])
        priority = priority_confidence = None
        if scores.priority is not None and self.priority_labels is not None:
            pprobs = np.asarray(scores.priority)
            pbest = int(pprobs.argmax())
            priority, priority_confidence = self.priority_labels[pbest], round(float(pprobs[pbest]), 6)
        return Prediction(
            prediction_id=prediction_id,
            ticket_id=ticket.ticket_id,
            category=self.category_labels[best],
            confidence=round(confidence, 6),
            probabilities=[
                LabelProbability(label=self.category_labels[i], probability=round(float(probs[i]), 6))
                for i in shown
            ],
            priority=priority,
            priority_confidence=priority_confidence,
            prediction_set=in_set,
            tags=self._tags(scores),
            route=routing.route(confidence, self.routing, sole),
            model_version=self.version,
            cached=cached,
        )

    @property
    def trained_at(self) -> str | None:
        return self.bundle.manifest.trained_at.isoformat()

    def review_share_baseline(self) -> float | None:
        """Share of held-out tickets this model routed to review at its threshold, when trained."""
        coverage = evaluation_summary(self.bundle.path).get(CATEGORY, {}).get("coverage")
        return None if coverage is None else round(1.0 - float(coverage), 6)

    def describe(self) -> dict[str, Any]:
        """What ``GET /model`` shows: which model answers and how good it was on held-out data."""
        manifest = self.bundle.manifest
        targets = {}
        for name, target in self.bundle.targets.items():
            targets[name] = {
                "labels": list(target.labels),
                "weights": dict(target.learned_weights or target.seed_weights),
                "temperature": target.calibrator.temperature,
            }
        return {
            "version": self.version,
            "trained_at": manifest.trained_at.isoformat(),
            "routing_threshold": self.threshold,
            "tags": None if self.bundle.tags is None else list(self.bundle.tags.tags),
            "routing_rule": self.routing.rule,
            "conformal_alpha": self.routing.alpha,
            "data_fingerprint": manifest.data_fingerprint,
            "targets": targets,
            "evaluation": evaluation_summary(self.bundle.path),
        }


_SUMMARY_KEYS = ("accuracy", "macro_f1", "ece", "coverage", "covered_accuracy")


def evaluation_summary(bundle_path: Path) -> dict[str, Any]:
    """Per target, the calibrated ensemble's held-out figures from the bundle's training report."""
    path = bundle_path / EVALUATION_DIR / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, Any] = {}
    for name, target in report.get("targets", {}).items():
        primary = target.get("systems", {}).get(target.get("primary_system"), {})
        out[name] = {
            "system": target.get("primary_system"),
            "rows": target.get("n_rows"),
            **{key: primary.get(key) for key in _SUMMARY_KEYS},
        }
    return out
