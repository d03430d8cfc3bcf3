"""Class-conditional (Mondrian) conformal prediction sets over the calibrated ensemble's probabilities.

A set holds every label whose p-value is at least ``alpha``; the p-value of label c compares the ticket's
non-conformity score for c (hinge: 1 - p_c) with the scores of calibration tickets whose true label is c
only. So coverage holds per queue, not just on average: a rare, hard queue cannot hide behind easy
ones. crepes computes the p-values (it has Mondrian categories built in; MAPIE 1.x has no class-
conditional mode). Non-smoothed p-values: the same ticket always gets the same set, at the price of sets
that are very slightly conservative.

Only the calibration scores are stored (plain arrays), not a crepes object, so a bundle's pickle does not
depend on crepes' class layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from crepes import ConformalClassifier
from crepes.extras import hinge

#: The miscoverage the sets aim at when nobody chooses one: 1 ticket in 20 may miss its true label.
DEFAULT_ALPHA = 0.05


def check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"conformal alpha must lie strictly between 0 and 1, got {alpha}")
    return float(alpha)


def min_rows_for(alpha: float) -> int:
    """Calibration rows a class needs before its sets can ever leave it out: (n + 1) * alpha >= 1."""
    return int(np.ceil(1.0 / check_alpha(alpha))) - 1


@dataclass
class MondrianConformal:
    """Calibration scores per true class; ``sets`` turns probability rows into prediction sets."""

    scores: np.ndarray
    classes: np.ndarray
    n_classes: int

    @classmethod
    def calibrate(cls, probs: np.ndarray, y: np.ndarray) -> MondrianConformal:
        """``probs``: calibrated probabilities of held-out rows; ``y``: their true class indices."""
        probs = np.asarray(probs, dtype=np.float64)
        y = np.asarray(y)
        if probs.ndim != 2 or len(probs) != len(y) or len(y) == 0:
            raise ValueError(f"need one probability row per label, got {probs.shape} and {y.shape}")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= probs.shape[1]:
            raise ValueError(f"labels must be class indices in 0..{probs.shape[1] - 1}")
        scores = hinge(probs, np.arange(probs.shape[1]), y)
        return cls(np.asarray(scores, dtype=np.float64), y.astype(np.int64), probs.shape[1])

    def class_counts(self) -> np.ndarray:
        """Calibration rows per class: a class with fewer than ``min_rows_for(alpha)`` is in every set."""
        return np.bincount(self.classes, minlength=self.n_classes)

    def p_values(self, probs: np.ndarray) -> np.ndarray:
        """(n, n_classes) p-values; column c is judged against class c's calibration scores only."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[1] != self.n_classes:
            raise ValueError(f"probabilities must have {self.n_classes} columns, got shape {probs.shape}")
        n = len(probs)
        if n == 0:
            return np.zeros((0, self.n_classes))
        predictor = ConformalClassifier().fit(self.scores, bins=self.classes)
        # Flattened, each (ticket, label) pair is one test object whose Mondrian category is the label.
        candidate = np.tile(np.arange(self.n_classes), n)
        p = predictor.predict_p(hinge(probs).reshape(-1), bins=candidate, smoothing=False)
        return np.asarray(p, dtype=np.float64).reshape(n, self.n_classes)

    def sets(self, probs: np.ndarray, alpha: float) -> np.ndarray:
        """Boolean (n, n_classes): label c is in ticket i's set when its p-value is at least ``alpha``."""
        return self.p_values(probs) >= check_alpha(alpha)
