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
from ticket_triage.models.members.base import MemberBase


class EncoderHeadMember(MemberBase):
    """Reads the ``target`` head of the fine-tuned encoder; ``fit`` only checks the scores are there."""

    def __init__(self, target: str = "category", name: str = "bert") -> None:
        self.name = name
        self.target = target
        self.n_classes_: int | None = None

    def _scores(self, features: FeatureSet) -> np.ndarray:
        probs = features.heads.get(self.target)
        if probs is None:
            raise MemberTrainingError(
                f"member {self.name!r} needs the fine-tuned encoder's {self.target!r} scores, but the "
                "features have none: enable [embeddings] with fine_tune = true in the feature config"
            )
        return probs

    def _fit(
        self,
        features: FeatureSet,
        labels: np.ndarray,
        n_classes: int,
        eval_set: tuple[FeatureSet, np.ndarray] | None,
    ) -> None:
        self._probabilities(self._scores(features), n_classes, len(features))  # the scores are there and fit
