"""Evaluation metrics: label quality, calibration quality and what routing at a threshold buys.

Everything returns plain Python numbers (or None when a quantity is undefined) so a report can be
written to JSON without conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, log_loss, precision_recall_fscore_support

#: Routing thresholds reported by default: 0.50, 0.55, ..., 0.95.
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
_SUM_TOLERANCE = 1e-3


class MetricsInputError(ValueError):
    """Probabilities, labels or predictions handed to a metric do not fit together."""


def _check_labels(y: np.ndarray, n_rows: int, n_classes: int, what: str = "y") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise MetricsInputError(f"{what} must be 1-D, got shape {y.shape}")
    if len(y) != n_rows:
        raise MetricsInputError(f"{what} has {len(y)} rows but {n_rows} were expected")
    if n_rows and not np.issubdtype(y.dtype, np.integer):
        raise MetricsInputError(f"{what} must hold integer class indices, got dtype {y.dtype}")
    if n_rows and (y.min() < 0 or y.max() >= n_classes):
        raise MetricsInputError(
            f"{what} holds class indices outside 0..{n_classes - 1} (min {y.min()}, max {y.max()})"
        )
    return y.astype(np.int64, copy=False)


def _check_probs(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise MetricsInputError(f"probs must have shape (n_rows, n_classes >= 2), got {probs.shape}")
    if len(probs) == 0:
        raise MetricsInputError("probs has no rows: nothing to evaluate")
    if not np.all(np.isfinite(probs)) or probs.min() < 0.0 or probs.max() > 1.0:
        raise MetricsInputError("probs must be finite and within [0, 1]")
    row_sums = probs.sum(axis=1, keepdims=True)
    worst = int(np.abs(row_sums[:, 0] - 1.0).argmax())
    if abs(row_sums[worst, 0] - 1.0) > _SUM_TOLERANCE:
        raise MetricsInputError(f"probs rows must sum to 1; row {worst} sums to {row_sums[worst, 0]:.6f}")
    # Rounding drift of float32 members (within the tolerance) would make log_loss warn on every call.
    return probs / row_sums, _check_labels(y, len(probs), probs.shape[1])


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    if n_bins < 1:
        raise MetricsInputError(f"n_bins must be >= 1, got {n_bins}")
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    # side="left": a confidence equal to an edge belongs to the bin below it, i.e. bins are (lower, upper].
    return np.searchsorted(inner_edges, confidence, side="left")


def reliability_bins(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> list[dict[str, Any]]:
    """Per-bin confidence vs accuracy of the top label, the raw material of a reliability diagram.

    Bins are equal-width over [0, 1]: bin b covers (b/n_bins, (b+1)/n_bins], the first one also
    holds 0. Every bin is returned; empty ones have count 0 and None for mean_confidence/accuracy.
    """
    probs, y = _check_probs(probs, y)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    index = _bin_index(confidence, n_bins)
    bins: list[dict[str, Any]] = []
    for b in range(n_bins):
        in_bin = index == b
        count = int(in_bin.sum())
        bins.append(
            {
                "lower": b / n_bins,
                "upper": (b + 1) / n_bins,
                "count": count,
                "mean_confidence": float(confidence[in_bin].mean()) if count else None,
                "accuracy": float(correct[in_bin].mean()) if count else None,
            }
        )
    return bins


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Top-label expected calibration error (Guo et al., 2017).

    Definition: with confidence c_i = max_k probs[i, k], prediction argmax_k probs[i, k] and
    equal-width bins B_b = (b/M, (b+1)/M] over [0, 1] (M = n_bins, the first bin also holds 0),

        ECE = sum_b (|B_b| / N) * |accuracy(B_b) - mean confidence(B_b)|

    where accuracy(B_b) is the share of rows in B_b whose prediction equals y. Empty bins add 0.
    It is 0 for a perfectly calibrated model and at most 1.
    """
    n_rows = len(np.asarray(probs))
    total = 0.0
    for row in reliability_bins(probs, y, n_bins):
        if row["count"]:
            total += row["count"] / n_rows * abs(row["accuracy"] - row["mean_confidence"])
    return float(total)


def risk_coverage(
    probs: np.ndarray, y: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> list[dict[str, Any]]:
    """What auto-routing buys at each threshold: a ticket is auto-routed when its top probability >= t.

    coverage is the share auto-routed, accuracy the accuracy on those rows (None when none is).
    """
    probs, y = _check_probs(probs, y)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    rows: list[dict[str, Any]] = []
    for t in thresholds:
        if not 0.0 <= t <= 1.0:
            raise MetricsInputError(f"thresholds must lie in [0, 1], got {t}")
        covered = confidence >= t
        n_covered = int(covered.sum())
        rows.append(
            {
                "threshold": float(t),
                "coverage": n_covered / len(y),
                "accuracy": float(correct[covered].mean()) if n_covered else None,
                "n_covered": n_covered,
            }
        )
    return rows


def prediction_summary(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Label-only metrics, for systems without probabilities (the baseline).

    macro-F1 and weighted-F1 average over the classes present in y_true or y_pred (a class that
    is neither expected nor predicted says nothing about this split); per_class lists every label,
    with None for precision/recall when undefined (nothing predicted / no support).
    """
    n_classes = len(labels)
    if n_classes < 2:
        raise MetricsInputError(f"need at least 2 labels, got {n_classes}")
    y_true = _check_labels(y_true, len(np.asarray(y_true)), n_classes, "y_true")
    if len(y_true) == 0:
        raise MetricsInputError("y_true has no rows: nothing to evaluate")
    y_pred = _check_labels(y_pred, len(y_true), n_classes, "y_pred")

    present = np.union1d(y_true, y_pred)
    all_classes = np.arange(n_classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=all_classes, zero_division=np.nan
    )
    per_class = {
        str(name): {
            "precision": None if np.isnan(precision[k]) else float(precision[k]),
            "recall": None if np.isnan(recall[k]) else float(recall[k]),
            "f1": None if np.isnan(f1[k]) else float(f1[k]),
            "support": int(support[k]),
        }
        for k, name in enumerate(labels)
    }
    return {
        "n_rows": len(y_true),
        "accuracy": float(np.mean(y_true == y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)),
        "log_loss": None,
        "ece": None,
        "per_class": per_class,
        "confusion": confusion_matrix(y_true, y_pred, labels=all_classes).tolist(),
        "risk_coverage": None,
        "threshold": None,
        "coverage": None,
        "covered_accuracy": None,
        "n_covered": None,
    }


def classification_summary(
    y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str], threshold: float
) -> dict[str, Any]:
    """Every number the report shows for one probabilistic system on one target.

    Adds to :func:`prediction_summary` the log-loss, ECE (15 bins), the risk-coverage table and
    coverage / accuracy on the auto-routed rows at the routing ``threshold``.
    """
    probs, y_true = _check_probs(probs, y_true)
    if probs.shape[1] != len(labels):
        raise MetricsInputError(f"probs has {probs.shape[1]} columns but {len(labels)} labels were given")
    if not 0.0 <= threshold <= 1.0:
        raise MetricsInputError(f"threshold must lie in [0, 1], got {threshold}")
    summary = prediction_summary(y_true, probs.argmax(axis=1), labels)
    at_threshold = risk_coverage(probs, y_true, (threshold,))[0]
    summary.update(
        {
            "log_loss": float(log_loss(y_true, probs, labels=np.arange(len(labels)))),
            "ece": expected_calibration_error(probs, y_true),
            "risk_coverage": risk_coverage(probs, y_true),
            "threshold": float(threshold),
            "coverage": at_threshold["coverage"],
            "covered_accuracy": at_threshold["accuracy"],
            "n_covered": at_threshold["n_covered"],
        }
    )
    return summary
