"""The contract every ensemble member keeps, so the ensemble can treat them alike."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ticket_triage.features.base import FeatureSet


class MemberTrainingError(RuntimeError):
    """A member could not be trained; raised loudly instead of dropping the member."""


@runtime_checkable
class Member(Protocol):
    """One classifier of the ensemble.

    ``y`` is integer-encoded 0..n_classes-1; ``predict_proba`` returns shape (n, n_classes) with
    columns in that order, rows summing to 1. ``models.members.base.MemberBase`` does the checks and the
    probability rows, so a member only fits and scores.
    """

    name: str

    def fit(
        self,
        features: FeatureSet,
        y: np.ndarray,
        n_classes: int,
        eval_set: tuple[FeatureSet, np.ndarray] | None = None,
    ) -> Member: ...

    def predict_proba(self, features: FeatureSet) -> np.ndarray: ...


def require_all_classes(name: str, y: np.ndarray, n_classes: int) -> None:
    """Fail loudly when a class is absent from a member's training rows."""
    present = np.unique(y)
    missing = sorted(set(range(n_classes)) - set(present.tolist()))
    if missing:
        raise MemberTrainingError(
            f"member {name!r} cannot train: {len(missing)} class(es) have no training rows "
            f"(class indices {missing[:10]}{'…' if len(missing) > 10 else ''})"
        )


def unfitted_copy(member: Member, **overrides: object) -> Member:
    """A new, unfitted member with the same constructor parameters (scikit-learn's ``clone``, for members).

    Used to fit the same member on cross-validation folds for out-of-fold predictions.
    """
    import inspect

    signature = inspect.signature(type(member).__init__)
    params = {p: getattr(member, p) for p in signature.parameters if p != "self" and hasattr(member, p)}
    params.update(overrides)
    return type(member)(**params)
