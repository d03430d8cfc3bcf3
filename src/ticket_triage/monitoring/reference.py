"""Reference distributions stored with a bundle, so live traffic can later be compared to training (PSI)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from ticket_triage.features.base import FeatureSet
from ticket_triage.features.registry import families, projected
from ticket_triage.models.target import Target
from ticket_triage.monitoring.drift import SignalExtractor, component_prefix

N_BINS = 10


def quantile_bins(values: np.ndarray, n_bins: int = N_BINS) -> dict[str, list[float]]:
    """Inner quantile edges and the share of reference values in each bin (edges deduplicated)."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return {"edges": edges.tolist(), "proportions": (counts / max(len(values), 1)).tolist()}


def monitored_columns(features: FeatureSet) -> list[int]:
    """Dense columns drift watches, in column order: those each family declares (features/registry.py)."""
    watched = {spec.name: spec for spec in families() if spec.monitored is not None}
    return [
        j
        for family, columns in features.blocks.items()
        if family in watched
        for j in range(columns.start, columns.stop)
        if watched[family].watches(features.dense_names[j])
    ]


#: Rows of the reference sample kept in the bundle for Evidently reports (of the validation split).
SAMPLE_ROWS = 1000


def build_reference(
    features: FeatureSet,
    predicted: dict[str, np.ndarray],
    labels: dict[str, list[str]],
    seed: int,
    *,
    validation: FeatureSet | None = None,
    confidence: np.ndarray | None = None,
) -> tuple[dict[str, Any], PCA | None]:
    """Bins per monitored feature, per embedding principal component, and per target's predicted classes.

    ``predicted`` are the validation split's predicted classes per target; with ``validation`` (its
    features) and ``confidence`` (the category's calibrated top probability there) the reference also
    gets confidence bins and a sample of monitored values for Evidently reports.
    """
    ref: dict[str, Any] = {"n_bins": N_BINS, "features": {}, "predictions": {}}
    for j in monitored_columns(features):
        ref["features"][features.dense_names[j]] = quantile_bins(features.dense[:, j])
    pca = None
    spec = projected()
    n_components = spec.monitored_components if spec is not None else 0
    # Training rows carry cross-fitted vectors from the fold encoders; new tickets go through the final
    # encoder, as the validation rows did, so the embedding reference is taken from those when given.
    vectors = validation if validation is not None and len(validation) > n_components else features
    if spec is not None and spec.name in vectors.blocks:
        block = vectors.block(spec.name)
        k = min(n_components, block.shape[0] - 1, block.shape[1])
        if k >= 1:
            pca = PCA(n_components=k, random_state=seed).fit(block)
            for i, column in enumerate(pca.transform(block).T):
                ref["features"][f"{component_prefix(spec.name)}{i + 1}"] = quantile_bins(column)
    for target, classes in predicted.items():
        counts = np.bincount(classes, minlength=len(labels[target]))
        ref["predictions"][target] = dict(
            zip(labels[target], (counts / max(counts.sum(), 1)).tolist(), strict=True)
        )
    if confidence is not None and len(confidence):
        ref["confidence"] = quantile_bins(np.asarray(confidence, dtype=float))
    if validation is not None and confidence is not None and Target.CATEGORY in predicted:
        ref["sample"] = _sample(
            ref, pca, validation, predicted[Target.CATEGORY], labels[Target.CATEGORY], confidence, seed
        )
    return ref, pca


def _sample(
    ref: dict[str, Any],
    pca: PCA | None,
    validation: FeatureSet,
    classes: np.ndarray,
    labels: list[str],
    confidence: np.ndarray,
    seed: int,
) -> list[dict[str, Any]]:
    """Monitored values, predicted category and confidence of up to SAMPLE_ROWS validation tickets."""
    n = len(validation.texts)
    rows = np.random.default_rng(seed).permutation(n)[:SAMPLE_ROWS]
    signals = SignalExtractor(ref, pca).extract(validation.subset(np.sort(rows)))
    return [
        {**values, "category": labels[int(classes[i])], "confidence": round(float(confidence[i]), 5)}
        for i, values in zip(np.sort(rows), signals, strict=True)
    ]
