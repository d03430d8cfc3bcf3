"""Reference distributions stored with a bundle, so live traffic can later be compared to training (PSI)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from ticket_triage.features.base import FeatureSet
from ticket_triage.models.target import Target
from ticket_triage.monitoring.drift import SignalExtractor

#: Dense feature names worth watching for drift: cheap to read and meaningful to an operator.
MONITORED = re.compile(
    r"^(sentiment__.*|readability__flesch.*|patterns__(n_chars|char_length|length).*|temporal__hour.*"
    r"|entities__(?!pos_).*|topics__topic_\d+)$"
)
N_BINS = 10
N_EMBEDDING_COMPONENTS = 5


def quantile_bins(values: np.ndarray, n_bins: int = N_BINS) -> dict[str, list[float]]:
    """Inner quantile edges and the share of reference values in each bin (edges deduplicated)."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return {"edges": edges.tolist(), "proportions": (counts / max(len(values), 1)).tolist()}


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
    for j, name in enumerate(features.dense_names):
        if MONITORED.match(name):
            ref["features"][name] = quantile_bins(features.dense[:, j])
    pca = None
    # Training rows carry cross-fitted vectors from the fold encoders; new tickets go through the final
    # encoder, as the validation rows did, so the embedding reference is taken from those when given.
    vectors = validation if validation is not None and len(validation) > N_EMBEDDING_COMPONENTS else features
    if "embeddings" in vectors.blocks:
        emb = vectors.block("embeddings")
        k = min(N_EMBEDDING_COMPONENTS, emb.shape[0] - 1, emb.shape[1])
        if k >= 1:
            pca = PCA(n_components=k, random_state=seed).fit(emb)
            for i, column in enumerate(pca.transform(emb).T):
                ref["features"][f"embeddings_pc{i + 1}"] = quantile_bins(column)
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
