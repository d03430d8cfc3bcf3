from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

from ticket_triage.models.metrics import (
    DEFAULT_THRESHOLDS,
    MetricsInputError,
    classification_summary,
    expected_calibration_error,
    reliability_bins,
    risk_coverage,
)

# Five rows, three classes. With n_bins=5 the bins are (0,.2], (.2,.4], (.4,.6], (.6,.8], (.8,1].
#   row  probs               y  conf  pred  correct  bin
#   0    [.50, .30, .20]     0  .50   0     yes      2
#   1    [.45, .35, .20]     1  .45   0     no       2
#   2    [.10, .85, .05]     1  .85   1     yes      4
#   3    [.05, .05, .90]     2  .90   2     yes      4
#   4    [.70, .20, .10]     2  .70   0     no       3
# bin 2: n=2, mean conf .475, accuracy .5 -> |gap| .025, weight 2/5 -> .010
# bin 3: n=1, mean conf .70,  accuracy 0  -> |gap| .70,  weight 1/5 -> .140
# bin 4: n=2, mean conf .875, accuracy 1  -> |gap| .125, weight 2/5 -> .050
# ECE = .010 + .140 + .050 = .200
HAND_PROBS = np.array(
    [
        [0.50, 0.30, 0.20],
        [0.45, 0.35, 0.20],
        [0.10, 0.85, 0.05],
        [0.05, 0.05, 0.90],
        [0.70, 0.20, 0.10],
    ]
)
HAND_Y = np.array([0, 1, 1, 2, 2])


def test_ece_matches_hand_computation() -> None:
    assert expected_calibration_error(HAND_PROBS, HAND_Y, n_bins=5) == pytest.approx(0.200)


def test_reliability_bins_match_hand_computation() -> None:
    bins = reliability_bins(HAND_PROBS, HAND_Y, n_bins=5)
    assert [b["count"] for b in bins] == [0, 0, 2, 1, 2]
    assert bins[0]["mean_confidence"] is None and bins[0]["accuracy"] is None
    assert bins[2]["mean_confidence"] == pytest.approx(0.475)
    assert bins[2]["accuracy"] == pytest.approx(0.5)
    assert bins[3]["accuracy"] == 0.0
    assert bins[4]["mean_confidence"] == pytest.approx(0.875)
    assert (bins[2]["lower"], bins[2]["upper"]) == pytest.approx((0.4, 0.6))


def test_confidence_on_a_bin_edge_belongs_to_the_lower_bin() -> None:
    # conf .6 and .4 are edges of 5 bins: (.4,.6] holds .6, (.2,.4] would hold .4 (only top label counts).
    probs = np.array([[0.6, 0.4], [0.4, 0.6], [0.8, 0.2]])
    bins = reliability_bins(probs, np.array([0, 1, 0]), n_bins=5)
    assert [b["count"] for b in bins] == [0, 0, 2, 1, 0]


def test_ece_near_zero_when_labels_are_sampled_from_the_probabilities() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(4, 0.7), size=20_000)
    y = np.array([rng.choice(4, p=p) for p in probs])
    assert expected_calibration_error(probs, y) < 0.02


def test_ece_large_for_an_overconfident_model() -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(4, 0.7), size=20_000)
    y = np.array([rng.choice(4, p=p) for p in probs])
    sharpened = probs**4
    sharpened /= sharpened.sum(axis=1, keepdims=True)
    # Same labels, same argmax, so accuracy is unchanged while confidence rises: a calibration gap.
    assert expected_calibration_error(sharpened, y) > 0.1
    assert expected_calibration_error(sharpened, y) > 5 * expected_calibration_error(probs, y)


def test_risk_coverage_hand_example() -> None:
    # confidences .95 (right), .80 (right), .70 (wrong), .60 (right), .50 (wrong)
    probs = np.array([[0.95, 0.05], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.5, 0.5]])
    y = np.array([0, 1, 1, 1, 1])
    rows = risk_coverage(probs, y, thresholds=(0.5, 0.7, 0.9, 0.99))
    # t=.5: all 5 covered, 3 right; t=.7: .95, .80, .70 (>= is inclusive), 2 right; t=.9: one, right.
    assert [r["n_covered"] for r in rows] == [5, 3, 1, 0]
    assert [r["coverage"] for r in rows] == pytest.approx([1.0, 0.6, 0.2, 0.0])
    assert rows[0]["accuracy"] == pytest.approx(3 / 5)
    assert rows[1]["accuracy"] == pytest.approx(2 / 3)
    assert rows[2]["accuracy"] == 1.0
    assert rows[3]["accuracy"] is None


def test_risk_coverage_default_thresholds_and_monotone_coverage() -> None:
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(5), size=500)
    y = rng.integers(0, 5, size=500)
    rows = risk_coverage(probs, y)
    assert [r["threshold"] for r in rows] == pytest.approx([0.5 + 0.05 * i for i in range(10)])
    assert len(DEFAULT_THRESHOLDS) == 10
    coverages = [r["coverage"] for r in rows]
    assert all(a >= b for a, b in itertools.pairwise(coverages))
    assert coverages[0] > coverages[-1]


def test_classification_summary_with_classes_absent_from_y_true() -> None:
    # y_true uses only a, b; the model predicts c once; d is never seen nor predicted.
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 2, 1, 1, 0])
    probs = np.full((5, 4), 0.1)
    probs[np.arange(5), y_pred] = 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = classification_summary(y_true, probs, ["a", "b", "c", "d"], threshold=0.7)
    # a: tp1 fp1 fn1 -> P .5 R .5 F1 .5;  b: tp2 fp0 fn1 -> P 1 R 2/3 F1 .8
    # c: tp0 fp1 fn0 -> P 0, R undefined, F1 = 2tp / (2tp + fp + fn) = 0;  d: nothing defined
    assert s["per_class"]["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert s["per_class"]["b"]["recall"] == pytest.approx(2 / 3)
    assert s["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert s["per_class"]["c"] == {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0}
    assert s["per_class"]["d"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    # macro over the classes seen or predicted (a, b, c); weighted by support (2, 3, 0)
    assert s["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert s["weighted_f1"] == pytest.approx((2 * 0.5 + 3 * 0.8) / 5)
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["log_loss"] == pytest.approx((3 * -math.log(0.7) + 2 * -math.log(0.1)) / 5)
    # every confidence is .7, one bin with accuracy .6
    assert s["ece"] == pytest.approx(0.1)
    assert np.array(s["confusion"]).shape == (4, 4)
    assert s["confusion"][0] == [1, 0, 1, 0]
    assert s["confusion"][1] == [1, 2, 0, 0]
    assert (s["coverage"], s["covered_accuracy"], s["n_covered"]) == pytest.approx((1.0, 0.6, 5))


def test_classification_summary_coverage_at_threshold_above_every_confidence() -> None:
    probs = np.array([[0.6, 0.4], [0.3, 0.7]])
    s = classification_summary(np.array([0, 1]), probs, ["x", "y"], threshold=0.9)
    assert s["coverage"] == 0.0 and s["covered_accuracy"] is None and s["n_covered"] == 0


@pytest.mark.parametrize(
    ("probs", "y", "labels", "match"),
    [
        (np.array([[0.5, 0.6]]), np.array([0]), ["a", "b"], "sum to 1"),
        (np.array([[0.5, 0.5]]), np.array([2]), ["a", "b"], "outside"),
        (np.array([[0.5, 0.5]]), np.array([0, 1]), ["a", "b"], "rows"),
        (np.array([[0.5, 0.5]]), np.array([0]), ["a", "b", "c"], "labels"),
        (np.array([[0.5, 0.5]]), np.array([0.0]), ["a", "b"], "integer"),
        (np.array([[np.nan, 0.5]]), np.array([0]), ["a", "b"], "finite"),
    ],
)
def test_bad_input_is_named(probs: np.ndarray, y: np.ndarray, labels: list[str], match: str) -> None:
    with pytest.raises(MetricsInputError, match=match):
        classification_summary(y, probs, labels, threshold=0.5)
