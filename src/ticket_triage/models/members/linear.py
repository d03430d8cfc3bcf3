"""A linear model on TF-IDF plus the dense view: exact lexical cues the tree members cannot see."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ticket_triage.data.class_balance import sample_weights
from ticket_triage.features.base import FeatureSet
from ticket_triage.models.base import MemberTrainingError
from ticket_triage.models.members.base import MemberBase


class LogRegMember(MemberBase):
    """Multinomial logistic regression on ``hstack(tfidf, scaled dense)``.

    ``dense_scale`` shrinks the standardised dense block: hundreds of unit-variance columns would
    otherwise outweigh the L2-normalised TF-IDF rows under one shared penalty ``C``.
    """

    def __init__(
        self,
        C: float = 10.0,
        dense_scale: float = 0.1,
        max_iter: int = 300,
        threads: int = 2,
        seed: int = 13,
        class_weight_power: float = 0.0,
        name: str = "logreg",
    ) -> None:
        if C <= 0:
            raise ValueError(f"LogRegMember: C must be > 0, got {C}")
        if dense_scale < 0:
            raise ValueError(f"LogRegMember: dense_scale must be >= 0, got {dense_scale}")
        self.name = name
        self.C = C
        self.dense_scale = dense_scale
        self.max_iter = max_iter
        self.threads = threads
        self.seed = seed
        self.class_weight_power = class_weight_power
        self.n_classes_: int | None = None
        self._scaler: StandardScaler | None = None
        self._model: LogisticRegression | None = None
        self._uses_sparse = False
        self._uses_dense = False

    def _design(self, features: FeatureSet) -> sp.csr_matrix:
        blocks: list[sp.spmatrix] = []
        if self._uses_sparse:
            if features.sparse is None:
                raise ValueError(f"member {self.name!r} was trained with TF-IDF features but got none")
            blocks.append(sp.csr_matrix(features.sparse, dtype=np.float32))
        if self._uses_dense:
            assert self._scaler is not None
            scaled = self._scaler.transform(features.dense) * self.dense_scale
            blocks.append(sp.csr_matrix(scaled.astype(np.float32)))
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def _fit(
        self,
        features: FeatureSet,
        labels: np.ndarray,
        n_classes: int,
        eval_set: tuple[FeatureSet, np.ndarray] | None,
    ) -> None:
        self._uses_sparse = features.sparse is not None and features.sparse.shape[1] > 0
        self._uses_dense = features.dense.ndim == 2 and features.dense.shape[1] > 0 and self.dense_scale > 0
        if not (self._uses_sparse or self._uses_dense):
            raise MemberTrainingError(f"member {self.name!r} cannot train: no TF-IDF and no dense columns")
        if self._uses_dense:
            self._scaler = StandardScaler().fit(features.dense)
        model = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
        with threadpool_limits(limits=self.threads):
            weights = sample_weights(labels, n_classes, self.class_weight_power)
            model.fit(self._design(features), labels, sample_weight=weights)
        self._model = model

    def _scores(self, features: FeatureSet) -> np.ndarray:
        assert self._model is not None
        return self._model.predict_proba(self._design(features))
