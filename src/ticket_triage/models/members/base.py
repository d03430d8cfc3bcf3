"""What every member does the same way, as scikit-learn's mixins do: checks around fit and predict_proba.

A member implements ``_fit`` (labels already checked) and ``_scores`` (raw class scores of a non-empty,
fitted batch); the base turns those scores into probability rows the ensemble can average.
"""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np

from ticket_triage.features.base import FeatureSet
from ticket_triage.models.members._inputs import (
    as_probabilities,
    check_eval_set,
    check_training_input,
    require_fitted,
)


class MemberBase:
    """One ensemble member (see ``models.base.Member``): validated input, float64 rows summing to 1."""

    #: Whether ``predict_proba`` spends its time in compiled code that releases the GIL, so serving may run
    #: it on a helper thread beside the other members (XGBoost's does; see ``WeightedEnsemble``).
    runs_without_gil: ClassVar[bool] = False

    name: str
    #: Set once fitted; the class-level None makes an unfitted (or never-fitted, unpickled) member say so.
    n_classes_: int | None = None

    def fit(
        self,
        features: FeatureSet,
        y: np.ndarray,
        n_classes: int,
        eval_set: tuple[FeatureSet, np.ndarray] | None = None,
    ) -> Self:
        """Check ``y`` (1-D, one per row, in range, every class present) and the eval set, then train."""
        labels = check_training_input(self.name, features, y, n_classes)
        evals = check_eval_set(self.name, eval_set, n_classes)
        self._fit(features, labels, n_classes, evals)
        self.n_classes_ = n_classes
        return self

    def predict_proba(self, features: FeatureSet) -> np.ndarray:
        """Shape (n, n_classes), float64, non-negative, rows summing to 1, columns in class order."""
        require_fitted(self.name, self.n_classes_ is not None)
        assert self.n_classes_ is not None
        if len(features) == 0:
            return np.zeros((0, self.n_classes_))
        return self._probabilities(self._scores(features), self.n_classes_, len(features))

    def _probabilities(self, raw: np.ndarray, n_classes: int, n_rows: int) -> np.ndarray:
        """Raw scores as probability rows, refusing a shape that does not fit the batch."""
        probs = as_probabilities(raw, n_classes, self.name)
        if probs.shape[0] != n_rows:
            raise RuntimeError(f"member {self.name!r} gave {probs.shape[0]} probability rows for {n_rows}")
        return probs

    def _fit(
        self,
        features: FeatureSet,
        labels: np.ndarray,
        n_classes: int,
        eval_set: tuple[FeatureSet, np.ndarray] | None,
    ) -> None:
        raise NotImplementedError

    def _scores(self, features: FeatureSet) -> np.ndarray:
        raise NotImplementedError
