"""Turns tickets into routed predictions with a loaded bundle; shared by the CLI and the service."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ticket_triage.data.schema import ID, LIST_SEPARATOR, TEXT
from ticket_triage.features.base import FeatureSet
from ticket_triage.models.bundle import Bundle
from ticket_triage.models.explanation import LabelEvidence, explain_text
from ticket_triage.models.target import Target
from ticket_triage.routing import RoutingPolicy, sole_label

CATEGORY = Target.CATEGORY
PRIORITY = Target.PRIORITY


def predict_probas(bundle: Bundle, frame: pd.DataFrame) -> tuple[FeatureSet, dict[str, np.ndarray]]:
    """Compute features once and calibrated probabilities for every target of the bundle."""
    features = bundle.pipeline.transform(frame)
    return features, {name: target.predict_proba(features) for name, target in bundle.targets.items()}


def explain_row(bundle: Bundle, row: pd.DataFrame, *, top_words: int, max_evals: int) -> list[LabelEvidence]:
    """The words behind the predicted category and the runner-up of a one-row ticket frame; word spans are
    offsets into its joined text (models/explanation.py)."""
    row = row.reset_index(drop=True)
    text = str(row[TEXT].iloc[0])

    def score(texts: list[str]) -> np.ndarray:
        frame = row.loc[[0] * len(texts)].reset_index(drop=True)
        frame[TEXT] = texts
        return predict_probas(bundle, frame)[1][CATEGORY]

    top_two = np.argsort(-score([text])[0], kind="stable")[:2].tolist()
    labels = bundle.targets[CATEGORY].labels
    return explain_text(text, score, top_two, labels, top_words=top_words, max_evals=max_evals)


def set_labels(labels: Sequence[str], in_set: np.ndarray, probs: np.ndarray) -> list[str]:
    """The labels of one prediction set, most probable first."""
    members = np.flatnonzero(in_set)
    return [str(labels[i]) for i in members[np.argsort(-probs[members], kind="stable")]]


def format_set(labels: Sequence[str], in_set: np.ndarray, probs: np.ndarray) -> str:
    return LIST_SEPARATOR.join(set_labels(labels, in_set, probs))


def predict_frame(bundle: Bundle, frame: pd.DataFrame, routing: RoutingPolicy | None = None) -> pd.DataFrame:
    """One output row per input row, in input order, in the CLI's documented column layout."""
    routing = routing or RoutingPolicy()
    features, probas = predict_probas(bundle, frame)
    category = bundle.targets[CATEGORY]
    probs = probas[CATEGORY]
    best = probs.argmax(axis=1)
    confidence = probs[np.arange(len(best)), best]
    out = pd.DataFrame(index=range(len(frame)))
    if ID in frame.columns:
        out["id"] = frame[ID].to_numpy()
    labels = np.asarray(category.labels, dtype=object)
    out["label"] = labels[best]
    out["confidence"] = confidence.round(6)
    sets = category.prediction_sets(probs, routing.alpha(bundle.routing))
    sole = None if sets is None else sole_label(sets, best)
    out["route"] = routing.routes(confidence, bundle.routing, sole)
    if PRIORITY in probas:
        pprobs = probas[PRIORITY]
        pbest = pprobs.argmax(axis=1)
        out["priority"] = np.asarray(bundle.targets[PRIORITY].labels, dtype=object)[pbest]
        out["priority_confidence"] = pprobs[np.arange(len(pbest)), pbest].round(6)
    # New columns go after the original six, so readers that count columns keep working. One cell per row:
    # the set's labels joined by LIST_SEPARATOR, most probable first.
    out["prediction_set"] = (
        None if sets is None else [format_set(labels, sets[i], probs[i]) for i in range(len(best))]
    )
    if bundle.tags is not None:
        tag_probs = bundle.tags.predict_proba(features)
        out["tags"] = [LIST_SEPARATOR.join(tag for tag, _ in bundle.tags.chosen(p)) for p in tag_probs]
    for j, label in enumerate(category.labels):
        out[f"prob_{label}"] = probs[:, j].round(6)
    return out
