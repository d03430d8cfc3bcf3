"""The fine-tuned MiniLM's own class scores as an ensemble member.

The encoder is fine-tuned once, in the feature pipeline (features/embeddings.py), with one head per
target; its scores arrive in ``FeatureSet.heads`` from the same forward pass as the embeddings, so this
member costs nothing at prediction time. On the training rows those scores are cross-fitted, which makes
them fair evidence for learning the ensemble's weights.
"""

from __future__ import annotations

import numpy as np

from ticket_triage.features.base import FeatureSet
from ticket_triage.models.base import MemberTrainingError
from ticket_triage.models.members._inputs import as_probabilities, check_training_input, require_fitted


class EncoderHeadMember:
    """Reads the ``target`` head of the fine-tuned encoder; ``fit`` only checks the scores are there."""

    def __init__(self, target: str = "category", name: str = "bert") -> None:
        self.name = name
        self.target = target
        self.n_classes_: int | None = None

    def _scores(self, features: FeatureSet, n_classes: int) -> np.ndarray:
        probs = features.heads.get(self.target)
        if probs is None:
            raise MemberTrainingError(
                f"member {self.name!r} needs the fine-tuned encoder's {self.target!r} scores, but the "
                "features have none: enable [embeddings] with fine_tune = true in the feature config"
            )
        return as_probabilities(probs, n_classes, self.name)

    def fit(
        self,
        features: FeatureSet,
        y: np.ndarray,
        n_classes: int,
        eval_set: tuple[FeatureSet, np.ndarray] | None = None,
    ) -> EncoderHeadMember:
        check_training_input(self.name, features, y, n_classes)
        self._scores(features, n_classes)
        self.n_classes_ = n_classes
        return self

    def predict_proba(self, features: FeatureSet) -> np.ndarray:
        require_fitted(self.name, self.n_classes_ is not None)
        assert self.n_classes_ is not None
        if len(features) == 0:
            return np.zeros((0, self.n_classes_))
        return self._scores(features, self.n_classes_)
