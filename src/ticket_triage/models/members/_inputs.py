"""Input checks every member runs, so a bad call fails with the member's name in the message."""

from __future__ import annotations

import numpy as np
from sklearn.exceptions import NotFittedError

from ticket_triage.features.base import FeatureSet
from ticket_triage.models.base import require_all_classes


def check_training_input(name: str, features: FeatureSet, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Validate ``y`` against ``features`` and return it as a 1-D int64 array."""
    if n_classes < 2:
        raise ValueError(f"member {name!r}: n_classes must be at least 2, got {n_classes}")
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"member {name!r}: y must be 1-D, got shape {labels.shape}")
    if len(labels) != len(features):
        raise ValueError(f"member {name!r}: y has {len(labels)} rows but the features have {len(features)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"member {name!r}: y must be integer class indices, got dtype {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"member {name!r}: y must lie in 0..{n_classes - 1}, got range {labels.min()}..{labels.max()}"
        )
    require_all_classes(name, labels, n_classes)
    return labels.astype(np.int64)


def check_eval_set(
    name: str, eval_set: tuple[FeatureSet, np.ndarray] | None, n_classes: int
) -> tuple[FeatureSet, np.ndarray] | None:
    """Validate an optional early-stopping split; it may lack classes, but its labels must be in range."""
    if eval_set is None:
        return None
    features, y = eval_set
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != len(features):
        raise ValueError(
            f"member {name!r}: eval_set labels must be 1-D with one row per eval ticket "
            f"(got shape {labels.shape} for {len(features)} tickets)"
        )
    if len(labels) == 0:
        return None
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"member {name!r}: eval_set labels must be integers in 0..{n_classes - 1}")
    return features, labels.astype(np.int64)


def require_fitted(name: str, fitted: bool) -> None:
    """Predicting with an untrained member is a programming error worth a clear message."""
    if not fitted:
        raise NotFittedError(f"member {name!r} is not fitted yet; call fit() first")


def as_probabilities(raw: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    """float64 rows that sum to exactly 1, whatever precision the library returned."""
    probs = np.asarray(raw, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise RuntimeError(
            f"member {name!r} produced probabilities of shape {probs.shape}, expected (n, {n_classes})"
        )
    probs = np.clip(probs, 0.0, None)
    sums = probs.sum(axis=1, keepdims=True)
    empty = sums[:, 0] <= 0
    probs[empty] = 1.0
    sums[empty] = n_classes
    return probs / sums
