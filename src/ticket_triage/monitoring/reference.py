"""Reference distributions stored with a bundle, so live traffic can later be compared to training (PSI)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from ticket_triage.features.base import FeatureSet

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


def build_reference(
    features: FeatureSet, predicted: dict[str, np.ndarray], labels: dict[str, list[str]], seed: int
) -> tuple[dict[str, Any], PCA | None]:
    """Bins per monitored feature, per embedding principal component, and per target's predicted classes."""
    ref: dict[str, Any] = {"n_bins": N_BINS, "features": {}, "predictions": {}}
    for j, name in enumerate(features.dense_names):
        if MONITORED.match(name):
            ref["features"][name] = quantile_bins(features.dense[:, j])
    pca = None
    if "embeddings" in features.blocks:
        emb = features.block("embeddings")
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
    return ref, pca
