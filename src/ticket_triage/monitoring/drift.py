"""Population stability index (PSI) of recent traffic against the bundle's training reference.

For one variable binned the same way in both samples, with ``e_i`` the reference share and ``a_i`` the
recent share of bin ``i``::

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

Bins come from the bundle (``reference.json``): for numeric features, inner edges at the reference's
deciles (equal shares by construction, edges deduplicated, so a feature with few distinct values has fewer
bins); a value equal to an edge falls in the bin above it. For predictions, one bin per category. A bin
empty on either side would make the logarithm infinite, so every share is floored at ``EPSILON`` (1e-4)
before the sum; shares are not renormalised afterwards. Read as: < 0.1 stable, 0.1-0.25 moderate shift,
> 0.25 large shift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ticket_triage.features.base import FeatureSet
from ticket_triage.features.registry import projected
from ticket_triage.models.target import Target

EPSILON = 1e-4
THRESHOLDS = (0.1, 0.25)


def component_prefix(family: str) -> str:
    """Prefix of the signals that are principal components of a family's block (``embeddings_pc1``, ...)."""
    return f"{family}_pc"


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """PSI of two share vectors over the same bins (see the module docstring)."""
    e = np.clip(np.asarray(expected, dtype=float), epsilon, None)
    a = np.clip(np.asarray(actual, dtype=float), epsilon, None)
    if e.shape != a.shape:
        raise ValueError(f"bins differ: {e.shape[0]} expected shares, {a.shape[0]} actual")
    return float(np.sum((a - e) * np.log(a / e)))


def shares_in_bins(values: Sequence[float], edges: Sequence[float]) -> np.ndarray:
    """Share of ``values`` in each of the ``len(edges) + 1`` bins the inner edges make."""
    data = np.asarray(values, dtype=float)
    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=float), data, side="right"), minlength=len(edges) + 1
    )
    return counts / max(len(data), 1)


class SignalExtractor:
    """Pulls the monitored values of each ticket out of a pass's features (cheap: column picks and one
    small projection), so the audit log can carry them and the drift window can be rebuilt from it."""

    def __init__(self, reference: Mapping[str, Any], pca: Any | None) -> None:
        names = list(reference.get("features", {}))
        spec = projected()
        #: The family whose block ``pca`` projects (its declaration says drift watches its components).
        self.projected_family = spec.name if spec is not None else None
        prefix = component_prefix(spec.name) if spec is not None else None
        is_component = [prefix is not None and n.startswith(prefix) for n in names]
        self.dense_names = [n for n, c in zip(names, is_component, strict=True) if not c]
        self.n_components = sum(is_component) if pca is not None else 0
        self._pca = pca
        self._columns: tuple[tuple[str, ...], list[int]] | None = None

    def _indices(self, dense_names: Sequence[str]) -> list[int]:
        key = tuple(dense_names)
        if self._columns is None or self._columns[0] != key:
            where = {name: i for i, name in enumerate(dense_names)}
            self._columns = (key, [where[n] for n in self.dense_names if n in where])
        return self._columns[1]

    def extract(self, features: FeatureSet) -> list[dict[str, float]]:
        columns = self._indices(features.dense_names)
        names = [features.dense_names[i] for i in columns]
        values = features.dense[:, columns].astype(float)
        rows = [dict(zip(names, np.round(row, 5).tolist(), strict=True)) for row in values]
        family = self.projected_family
        if self.n_components and family is not None and family in features.blocks:
            components = self._pca.transform(features.block(family))[:, : self.n_components]
            prefix = component_prefix(family)
            for row, pcs in zip(rows, np.round(components, 5).tolist(), strict=True):
                row.update({f"{prefix}{i + 1}": v for i, v in enumerate(pcs)})
        return rows


@dataclass(frozen=True)
class WindowRow:
    """One recent prediction as the drift window needs it."""

    category: str
    confidence: float
    signals: Mapping[str, float] | None


@dataclass
class DriftSummary:
    model_version: str
    window: int
    features: dict[str, float] = field(default_factory=dict)
    prediction: float | None = None
    confidence: float | None = None
    over: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "window": self.window,
            "psi": {"features": self.features, "prediction": self.prediction, "confidence": self.confidence},
            "features_over": self.over,
            "epsilon": EPSILON,
        }


def compute_drift(
    reference: Mapping[str, Any], rows: Sequence[WindowRow], model_version: str, min_rows: int = 1
) -> DriftSummary:
    """PSI per monitored feature, of the predicted categories and of the confidences."""
    summary = DriftSummary(model_version=model_version, window=len(rows))
    if len(rows) < min_rows:
        return summary
    for name, ref in reference.get("features", {}).items():
        values = [r.signals[name] for r in rows if r.signals and name in r.signals]
        if values:
            summary.features[name] = psi(ref["proportions"], shares_in_bins(values, ref["edges"]))
    predicted = reference.get("predictions", {}).get(Target.CATEGORY)
    if predicted:
        labels = list(predicted)
        index = {label: i for i, label in enumerate(labels)}
        counts = np.zeros(len(labels))
        for r in rows:
            if r.category in index:
                counts[index[r.category]] += 1
        summary.prediction = psi([predicted[label] for label in labels], counts / max(counts.sum(), 1))
    confidence = reference.get("confidence")
    if confidence:
        summary.confidence = psi(
            confidence["proportions"], shares_in_bins([r.confidence for r in rows], confidence["edges"])
        )
    summary.over = {f"{t}": sum(v > t for v in summary.features.values()) for t in THRESHOLDS}
    return summary
