"""Weighted soft vote over the members, and the validation-set search for its weights."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor

import numpy as np
from scipy.optimize import minimize

from ticket_triage.features.base import FeatureSet
from ticket_triage.models.base import Member

# Probabilities are floored here before taking logs, so one confident miss cannot make the loss infinite.
_EPS = 1e-12
#: Learned weights below this are set to 0: such a member moves no probability by more than 1 % yet costs
#: its full prediction time when serving (RandomForest at weight 0.001 took 0.17 s of a 256-ticket pass).
MIN_WEIGHT = 0.01


class EnsembleWeightError(ValueError):
    """Weights that do not fit the members (wrong names, negative, or all zero)."""


def normalize_weights(weights: Mapping[str, float], names: list[str] | set[str]) -> dict[str, float]:
    """Check ``weights`` covers exactly ``names`` with non-negative values and rescale them to sum to 1."""
    expected, given = set(names), set(weights)
    if given != expected:
        parts = []
        if expected - given:
            parts.append(f"missing {sorted(expected - given)}")
        if given - expected:
            parts.append(f"unknown {sorted(given - expected)}")
        raise EnsembleWeightError(f"ensemble weights must name exactly the members: {', '.join(parts)}")
    values = {name: float(w) for name, w in weights.items()}
    bad = {name: w for name, w in values.items() if not np.isfinite(w) or w < 0}
    if bad:
        raise EnsembleWeightError(f"ensemble weights must be finite and non-negative, got {bad}")
    total = sum(values.values())
    if total <= 0:
        raise EnsembleWeightError("ensemble weights sum to 0; at least one member needs a positive weight")
    if abs(total - 1.0) < 1e-12:
        # Already normalised: keep the exact values so weights compare equal after a round trip.
        return {name: values[name] for name in sorted(values)}
    return {name: values[name] / total for name in sorted(values)}


def _check_probas(member_probas: Mapping[str, np.ndarray]) -> tuple[int, int]:
    if not member_probas:
        raise ValueError("no member probabilities given")
    shapes = {name: np.shape(p) for name, p in member_probas.items()}
    if any(len(s) != 2 for s in shapes.values()) or len(set(shapes.values())) != 1:
        raise ValueError(f"member probabilities must all be 2-D with one shape, got {shapes}")
    n, k = next(iter(shapes.values()))
    return n, k


def combine(member_probas: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted average of the members' class probabilities (rows still sum to 1).

    A member with weight 0 may be left out of ``member_probas``: serving does not run members that
    cannot change the answer.
    """
    n, k = _check_probas(member_probas)
    names = set(member_probas) | {name for name, w in weights.items() if w == 0}
    normalized = normalize_weights(weights, names)
    out = np.zeros((n, k), dtype=np.float64)
    for name, w in normalized.items():
        if w > 0:
            out += w * np.asarray(member_probas[name], dtype=np.float64)
    return out


class WeightedEnsemble:
    """The members plus their vote weights; prediction is a weighted soft vote."""

    def __init__(self, members: Mapping[str, Member], weights: Mapping[str, float]) -> None:
        if not members:
            raise EnsembleWeightError("an ensemble needs at least one member")
        mismatched = [key for key, m in members.items() if m.name != key]
        if mismatched:
            raise ValueError(f"members must be keyed by their own name; mismatched keys {mismatched}")
        self.members = dict(members)
        self.weights = normalize_weights(weights, list(self.members))

    def member_probas(self, features: FeatureSet) -> dict[str, np.ndarray]:
        """Each member's probabilities; members with weight 0 are still run so they can be re-weighted."""
        return {name: member.predict_proba(features) for name, member in self.members.items()}

    @property
    def active(self) -> dict[str, Member]:
        """The members whose vote counts; the others cost CPU without moving any answer."""
        return {name: m for name, m in self.members.items() if self.weights[name] > 0}

    def helper_thread_members(self) -> list[str]:
        """Active members whose prediction releases the GIL, so serving may run them on a helper thread
        beside the others (``runs_without_gil``; a member without that declaration stays on the caller's)."""
        return [name for name, m in self.active.items() if getattr(m, "runs_without_gil", False)]

    def combine(
        self, member_probas: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None
    ) -> np.ndarray:
        """Soft vote with this ensemble's weights, or with ``weights`` to compare another weighting."""
        return combine(member_probas, self.weights if weights is None else weights)

    def predict_proba(self, features: FeatureSet, helper: Executor | None = None) -> np.ndarray:
        """Soft vote of the active members; with a ``helper`` thread the members that release the GIL run
        on it while this thread runs the others (collected last, so this thread never waits idle)."""
        if helper is None:
            return self.combine({name: m.predict_proba(features) for name, m in self.active.items()})
        side = {
            name: helper.submit(self.members[name].predict_proba, features)
            for name in self.helper_thread_members()
        }
        probas = {name: m.predict_proba(features) for name, m in self.active.items() if name not in side}
        probas.update({name: future.result() for name, future in side.items()})
        return self.combine(probas)


def log_loss_of_mix(
    member_probas: Mapping[str, np.ndarray], y: np.ndarray, weights: Mapping[str, float]
) -> float:
    """Mean negative log-likelihood of the weighted average at the true classes."""
    mixed = combine(member_probas, weights)
    picked = mixed[np.arange(len(y)), np.asarray(y)]
    return float(-np.mean(np.log(np.clip(picked, _EPS, None))))


def optimize_weights(member_probas: Mapping[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    """Weights on the simplex minimising the validation log-loss of the soft vote.

    The loss is convex in the weights (minus log of a linear function), so SLSQP from uniform weights
    finds the global optimum deterministically, and useless members can get exactly 0.
    """
    n, k = _check_probas(member_probas)
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != n or n == 0:
        raise ValueError(f"y must be 1-D with one label per probability row ({n}), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"y must be integer class indices in 0..{k - 1}")
    names = sorted(member_probas)
    if len(names) == 1:
        return {names[0]: 1.0}
    # Column m: member m's probability of each row's true class; the mix is linear in these.
    at_truth = np.column_stack(
        [np.asarray(member_probas[m], dtype=np.float64)[np.arange(n), labels] for m in names]
    )

    def loss(w: np.ndarray) -> float:
        return float(-np.mean(np.log(np.clip(at_truth @ w, _EPS, None))))

    def grad(w: np.ndarray) -> np.ndarray:
        return -(at_truth / np.clip(at_truth @ w, _EPS, None)[:, None]).mean(axis=0)

    m = len(names)
    result = minimize(
        loss,
        np.full(m, 1.0 / m),
        jac=grad,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones_like(w)}],
        options={"maxiter": 500, "ftol": 1e-12},
    )
    weights = np.clip(result.x, 0.0, None)
    weights[weights < MIN_WEIGHT * max(weights.sum(), _EPS)] = 0.0
    if weights.sum() <= 0 or loss(weights / weights.sum()) > loss(np.full(m, 1.0 / m)):
        weights = np.full(m, 1.0 / m)  # never return something worse than the plain average
    weights = weights / weights.sum()
    return {name: float(w) for name, w in zip(names, weights, strict=True)}
