"""Weights that keep rare classes from being ignored, shared by every member and the encoder."""

from __future__ import annotations

import numpy as np


def class_weights(codes: np.ndarray, n_classes: int, power: float) -> np.ndarray:
    """Per-class weight ``(rows / (classes present * rows of the class)) ** power``, mean 1 over the rows.

    ``power`` 0 weighs every row alike, 1 is scikit-learn's "balanced"; in between (0.5 by default) lifts a
    queue with 5 tickets without letting it outweigh one with 500. Codes of -1 (no label) are ignored.
    """
    labelled = np.asarray(codes)[np.asarray(codes) >= 0]
    counts = np.bincount(labelled, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_classes)
    if power > 0 and present.any():
        weights[present] = (counts.sum() / (present.sum() * counts[present])) ** power
        weights /= float(weights[labelled].mean())
    return weights


def sample_weights(codes: np.ndarray, n_classes: int, power: float) -> np.ndarray | None:
    """One weight per row from :func:`class_weights`; None when ``power`` is 0 (libraries' fast path)."""
    if power <= 0:
        return None
    return class_weights(codes, n_classes, power)[np.asarray(codes)]
