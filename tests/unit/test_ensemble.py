"""The weighted soft vote, the search for its weights, and temperature calibration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.exceptions import NotFittedError

from ticket_triage.features.base import FeatureSet
from ticket_triage.models.calibration import TemperatureScaler
from ticket_triage.models.ensemble import (
    EnsembleWeightError,
    WeightedEnsemble,
    combine,
    log_loss_of_mix,
    optimize_weights,
)

K = 4


class FixedMember:
    """A stand-in member that returns preset probabilities, so the vote can be checked by hand."""

    def __init__(self, name: str, probs: np.ndarray) -> None:
        self.name = name
        self.probs = probs

    def fit(self, features, y, n_classes, eval_set=None) -> FixedMember:
        return self

    def predict_proba(self, features: FeatureSet) -> np.ndarray:
        return self.probs[: len(features)]


def _random_probs(rng: np.random.Generator, n: int, k: int = K) -> np.ndarray:
    return rng.dirichlet(np.ones(k), size=n)


def _features(n: int) -> FeatureSet:
    return FeatureSet(texts=["x"] * n, dense=np.zeros((n, 1)), dense_names=["zero"])


@pytest.fixture
def members() -> dict[str, FixedMember]:
    rng = np.random.default_rng(0)
    return {name: FixedMember(name, _random_probs(rng, 6)) for name in ("a", "b", "c")}


class GilFreeMember(FixedMember):
    """A stand-in that declares its prediction leaves the GIL, as XGBoost's does."""

    runs_without_gil = True


def test_helper_thread_members_are_the_active_ones_that_leave_the_gil() -> None:
    rng = np.random.default_rng(0)
    members = {
        "free": GilFreeMember("free", _random_probs(rng, 6)),
        "idle": GilFreeMember("idle", _random_probs(rng, 6)),
        "held": FixedMember("held", _random_probs(rng, 6)),
    }
    ensemble = WeightedEnsemble(members, {"free": 0.5, "idle": 0.0, "held": 0.5})
    assert ensemble.helper_thread_members() == ["free"]  # "idle" has no vote, "held" needs the GIL


# -- weights ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"a": 1.0, "b": 1.0}, r"missing \['c'\]"),
        ({"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}, r"unknown \['d'\]"),
        ({"a": 1.0, "b": -0.5, "c": 1.0}, "non-negative"),
        ({"a": 1.0, "b": float("nan"), "c": 1.0}, "finite"),
        ({"a": 0.0, "b": 0.0, "c": 0.0}, "sum to 0"),
    ],
)
def test_bad_weights_are_rejected_with_the_reason(members, weights, message) -> None:
    with pytest.raises(EnsembleWeightError, match=message):
        WeightedEnsemble(members, weights)


def test_weight_errors_are_value_errors(members) -> None:
    with pytest.raises(ValueError):
        WeightedEnsemble(members, {"a": 1.0})


def test_weights_are_normalised_keeping_their_ratios(members) -> None:
    ensemble = WeightedEnsemble(members, {"a": 2.0, "b": 1.0, "c": 1.0})
    assert ensemble.weights == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.25})


def test_members_must_be_keyed_by_their_names(members) -> None:
    members["z"] = members.pop("c")
    with pytest.raises(ValueError, match="'z'"):
        WeightedEnsemble(members, {"a": 1.0, "b": 1.0, "z": 1.0})


# -- the vote ---------------------------------------------------------------------------------------


def test_combine_is_the_weighted_average(members) -> None:
    ensemble = WeightedEnsemble(members, {"a": 3.0, "b": 1.0, "c": 0.0})
    probas = ensemble.member_probas(_features(6))
    expected = 0.75 * members["a"].probs + 0.25 * members["b"].probs
    np.testing.assert_allclose(ensemble.combine(probas), expected, atol=1e-15)
    np.testing.assert_allclose(ensemble.predict_proba(_features(6)), expected, atol=1e-15)


def test_combine_accepts_other_weights_without_changing_the_ensemble(members) -> None:
    ensemble = WeightedEnsemble(members, {"a": 1.0, "b": 1.0, "c": 1.0})
    probas = ensemble.member_probas(_features(6))
    np.testing.assert_allclose(ensemble.combine(probas, {"a": 0.0, "b": 0.0, "c": 5.0}), members["c"].probs)
    assert ensemble.weights == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_combined_rows_still_sum_to_one(members) -> None:
    ensemble = WeightedEnsemble(members, {"a": 0.2, "b": 0.5, "c": 0.3})
    np.testing.assert_allclose(ensemble.predict_proba(_features(6)).sum(axis=1), 1.0)


def test_combine_rejects_members_that_disagree_on_shape(members) -> None:
    probas = {"a": members["a"].probs, "b": members["b"].probs[:, :3]}
    with pytest.raises(ValueError, match="one shape"):
        combine(probas, {"a": 1.0, "b": 1.0})


# -- weight search ----------------------------------------------------------------------------------


def _informative_and_noise(n: int = 600) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``good`` leans towards the truth, ``noise`` ignores it, ``weak`` leans a little."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, K, size=n)
    onehot = np.eye(K)[y]
    good = softmax(rng.normal(size=(n, K)) + 2.5 * onehot, axis=1)
    weak = softmax(rng.normal(size=(n, K)) + 0.7 * onehot, axis=1)
    noise = _random_probs(rng, n)
    return {"good": good, "weak": weak, "noise": noise}, y


def test_optimized_weights_beat_uniform_and_favour_the_informative_member() -> None:
    probas, y = _informative_and_noise()
    weights = optimize_weights(probas, y)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert all(w >= 0 for w in weights.values())
    assert weights["good"] > 0.5
    assert weights["good"] > weights["noise"]
    assert weights["weak"] >= weights["noise"]
    uniform = {name: 1.0 for name in probas}
    assert log_loss_of_mix(probas, y, weights) < log_loss_of_mix(probas, y, uniform) - 0.05


def test_two_independent_informative_members_share_the_vote() -> None:
    """Errors that do not coincide average out, so the mix must beat either member alone."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, K, size=800)
    onehot = np.eye(K)[y]
    probas = {name: softmax(rng.normal(size=(800, K)) + 1.5 * onehot, axis=1) for name in ("left", "right")}
    weights = optimize_weights(probas, y)
    assert min(weights.values()) > 0.3
    mixed = log_loss_of_mix(probas, y, weights)
    assert mixed < log_loss_of_mix(probas, y, {"left": 1.0, "right": 0.0})
    assert mixed < log_loss_of_mix(probas, y, {"left": 0.0, "right": 1.0})


def test_optimized_weights_are_a_minimum_on_the_simplex() -> None:
    """Moving any share of weight between two members must not lower the loss."""
    probas, y = _informative_and_noise()
    weights = optimize_weights(probas, y)
    best = log_loss_of_mix(probas, y, weights)
    names = sorted(weights)
    for src in names:
        for dst in names:
            if src == dst or weights[src] == 0:
                continue
            step = min(0.02, weights[src])
            moved = dict(weights)
            moved[src] -= step
            moved[dst] += step
            assert log_loss_of_mix(probas, y, moved) >= best - 1e-9


def test_an_ensemble_keeps_optimized_weights_exactly() -> None:
    """Callers compare the live weights with the learned ones, so normalising must not perturb them."""
    probas, y = _informative_and_noise()
    members = {name: FixedMember(name, p) for name, p in probas.items()}
    learned = optimize_weights(probas, y)
    assert WeightedEnsemble(members, learned).weights == learned
    # These three sum to 0.9999999999999999 in floating point; dividing by that would change them.
    rounded = {"good": 0.6, "weak": 0.3, "noise": 0.1}
    assert WeightedEnsemble(members, rounded).weights == rounded


def test_optimize_weights_is_deterministic() -> None:
    probas, y = _informative_and_noise()
    assert optimize_weights(probas, y) == optimize_weights(probas, y)


def test_optimize_weights_rejects_labels_out_of_range() -> None:
    probas, y = _informative_and_noise()
    with pytest.raises(ValueError, match=r"0\.\.3"):
        optimize_weights(probas, np.where(y == 0, K, y))
    with pytest.raises(ValueError, match="one label per"):
        optimize_weights(probas, y[:-1])


# -- temperature ------------------------------------------------------------------------------------


def _calibrated(n: int = 4000, seed: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, their probabilities and labels drawn from exactly those probabilities."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, K))
    probs = softmax(logits, axis=1)
    y = np.array([rng.choice(K, p=p) for p in probs])
    return logits, probs, y


def test_overconfident_probabilities_get_softened() -> None:
    logits, _, y = _calibrated()
    overconfident = softmax(3.0 * logits, axis=1)
    scaler = TemperatureScaler().fit(overconfident, y)
    assert scaler.temperature > 2.0
    assert scaler.nll(overconfident, y, scaler.temperature) < scaler.nll(overconfident, y) - 0.1
    calibrated = scaler.transform(overconfident)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    np.testing.assert_array_equal(calibrated.argmax(axis=1), overconfident.argmax(axis=1))
    assert calibrated.max(axis=1).mean() < overconfident.max(axis=1).mean()


def test_underconfident_probabilities_get_sharpened() -> None:
    logits, _, y = _calibrated()
    timid = softmax(0.4 * logits, axis=1)
    assert TemperatureScaler().fit(timid, y).temperature < 0.7


def test_calibrated_probabilities_keep_a_temperature_near_one() -> None:
    _, probs, y = _calibrated()
    scaler = TemperatureScaler().fit(probs, y)
    assert abs(scaler.temperature - 1.0) < 0.1
    np.testing.assert_allclose(scaler.transform(probs), probs, atol=0.05)


def test_temperature_scaler_must_be_fitted_and_fed_probabilities() -> None:
    _, probs, y = _calibrated(n=50)
    with pytest.raises(NotFittedError):
        TemperatureScaler().transform(probs)
    with pytest.raises(ValueError, match="non-negative"):
        TemperatureScaler().fit(probs - 0.5, y)
    with pytest.raises(ValueError, match="one label per"):
        TemperatureScaler().fit(probs, y[:-1])


def test_a_member_worth_less_than_one_percent_gets_no_weight() -> None:
    """A near-uniform member only insures against the other's rare confident misses: its optimal weight is
    about 0.004, which changes no probability by 1 % but would cost its whole prediction time."""
    from ticket_triage.models.ensemble import MIN_WEIGHT

    n, k = 2000, 4
    y = np.arange(n) % k
    sharp = np.full((n, k), 0.001 / 3)
    sharp[np.arange(n), y] = 0.999
    wrong = np.arange(6) * 300  # 0.3 % of rows confidently wrong
    sharp[wrong] = np.roll(sharp[wrong], 1, axis=1)
    flat = np.full((n, k), 1.0 / k)
    weights = optimize_weights({"sharp": sharp, "flat": flat}, y)
    assert weights == {"flat": 0.0, "sharp": 1.0}
    assert MIN_WEIGHT == 0.01
