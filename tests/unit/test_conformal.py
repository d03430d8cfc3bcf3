"""Mondrian conformal sets: coverage per class on exchangeable data, and the rule comparison."""

from __future__ import annotations

import numpy as np
import pytest

from ticket_triage.models.conformal import MondrianConformal, min_rows_for
from ticket_triage.models.conformal_evaluation import choose_rule, conformal_summary, threshold_coverage_at


def _softmax_rows(rng: np.random.Generator, y: np.ndarray, k: int, signal: np.ndarray) -> np.ndarray:
    logits = rng.normal(size=(len(y), k))
    logits[np.arange(len(y)), y] += signal[y]
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def test_every_class_reaches_its_coverage_including_a_hard_one() -> None:
    rng = np.random.default_rng(7)
    k = 6
    signal = np.array([4.0, 4.0, 4.0, 4.0, 4.0, 0.5])  # class 5 is barely told apart
    y = rng.integers(0, k, 24_000)
    probs = _softmax_rows(rng, y, k, signal)
    conformal = MondrianConformal.calibrate(probs[:12_000], y[:12_000])
    sets = conformal.sets(probs[12_000:], alpha=0.1)
    covered = sets[np.arange(12_000), y[12_000:]]
    per_class = [covered[y[12_000:] == c].mean() for c in range(k)]
    assert min(per_class) >= 0.88, per_class  # 0.9 up to sampling noise, for the hard class too
    # A marginal method could under-cover class 5 and over-cover the rest; Mondrian cannot.
    assert max(per_class) <= 0.93, per_class
    easy_sizes = sets[y[12_000:] == 0].sum(axis=1).mean()
    assert easy_sizes < sets.shape[1]  # sets are informative, not everything


def test_a_class_without_enough_calibration_rows_is_never_left_out() -> None:
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(200, dtype=int), np.ones(200, dtype=int), np.full(min_rows_for(0.05) - 1, 2)]
    probs = _softmax_rows(rng, y, 3, np.array([3.0, 3.0, 3.0]))
    assert min_rows_for(0.05) == 19
    conformal = MondrianConformal.calibrate(probs, y)
    assert conformal.class_counts().tolist() == [200, 200, 18]
    test = _softmax_rows(rng, rng.integers(0, 2, 500), 3, np.array([3.0, 3.0, 3.0]))
    assert conformal.sets(test, 0.05)[:, 2].all()


def test_the_same_ticket_always_gets_the_same_set() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, 400)
    probs = _softmax_rows(rng, y, 4, np.full(4, 2.0))
    conformal = MondrianConformal.calibrate(probs, y)
    first = conformal.p_values(probs[:50])
    assert np.array_equal(first, conformal.p_values(probs[:50]))
    assert np.array_equal(conformal.p_values(probs[:1]), first[:1])  # alone or in a batch alike


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="class indices"):
        MondrianConformal.calibrate(np.full((2, 2), 0.5), np.array([0, 2]))
    conformal = MondrianConformal.calibrate(np.full((2, 2), 0.5), np.array([0, 1]))
    with pytest.raises(ValueError, match="2 columns"):
        conformal.sets(np.full((1, 3), 1 / 3), 0.05)
    with pytest.raises(ValueError, match="alpha"):
        conformal.sets(np.full((1, 2), 0.5), 0.0)


def test_threshold_coverage_at_an_accuracy_counts_whole_confidence_ties() -> None:
    confidence = np.array([0.9, 0.8, 0.8, 0.6, 0.5])
    correct = np.array([True, True, False, True, False])
    # At >= 0.8 three tickets go, two right (0.667); 1.0 is only reached by the first ticket alone.
    assert threshold_coverage_at(confidence, correct, 1.0) == {
        "coverage": 0.2,
        "threshold": 0.9,
        "accuracy": 1.0,
    }
    at = threshold_coverage_at(confidence, correct, 0.7)
    assert at["coverage"] == 0.8 and at["threshold"] == 0.6  # 3 of 4 right at >= 0.6
    assert threshold_coverage_at(confidence, np.zeros(5, dtype=bool), 0.5)["coverage"] == 0.0


def test_the_summary_chooses_the_rule_that_routes_more_at_equal_accuracy() -> None:
    # Two classes; the model is confident and right when the set is a singleton, and ranks badly:
    # high-confidence wrong answers ruin the threshold rule at the singleton rule's accuracy.
    probs = np.array([[0.95, 0.05], [0.94, 0.06], [0.6, 0.4], [0.6, 0.4], [0.3, 0.7], [0.99, 0.01]])
    y = np.array([0, 0, 0, 0, 1, 1])
    sets = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1], [1, 1]], dtype=bool)
    summary = conformal_summary(probs, y, sets, ["a", "b"], threshold=0.7, alpha=0.1)
    assert summary["policies"]["singleton"] == {"coverage": 5 / 6, "accuracy": 1.0, "n_auto": 5}
    assert summary["chosen_rule"] == "singleton"
    assert summary["comparison"]["singleton"]["threshold_rule_at_same_accuracy"]["coverage"] == 0.0
    assert summary["coverage"] == 1.0 and summary["set_sizes"]["2"] == 1
    assert summary["per_class"]["b"] == {"rows": 2, "coverage": 1.0}
    assert summary["worst_class"] is None  # no class has 20 rows


def test_a_gain_within_sampling_noise_keeps_the_threshold_rule() -> None:
    # On 1,000 tickets the threshold rule reaches accuracy 0.99 at 70.0 % (the 700 most confident are right).
    confidence = np.linspace(0.999, 0.5, 1000)
    correct = np.arange(1000) < 700
    unused = {"coverage": 0.0, "accuracy": None, "n_auto": 0}
    small = {"singleton": {"coverage": 0.71, "accuracy": 0.99, "n_auto": 710}, "both": unused}
    rule, comparison, reason = choose_rule(small, confidence, correct)  # type: ignore[arg-type]
    assert comparison["singleton"]["gain"] == pytest.approx(0.71 - 0.707)  # 707: 700 right of 707 >= 0.99
    assert comparison["singleton"]["noise_margin"] == pytest.approx(2 * (0.71 * 0.29 / 1000) ** 0.5)
    assert rule == "threshold" and "sampling noise" in reason
    large = {"singleton": {"coverage": 0.8, "accuracy": 0.99, "n_auto": 800}, "both": unused}
    rule, comparison, reason = choose_rule(large, confidence, correct)  # type: ignore[arg-type]
    assert rule == "singleton" and comparison["singleton"]["gain"] > comparison["singleton"]["noise_margin"]


def test_without_a_gain_the_threshold_rule_stays() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8]])
    y = np.array([0, 0, 1])
    sets = np.array([[1, 1], [1, 1], [0, 1]], dtype=bool)  # only one singleton: routes less
    summary = conformal_summary(probs, y, sets, ["a", "b"], threshold=0.7, alpha=0.1)
    assert summary["chosen_rule"] == "threshold"
    assert "no set rule" in summary["reason"]
