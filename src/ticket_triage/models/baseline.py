"""The comparison point of every report: TF-IDF + linear SVM on the raw text, nothing else.

If the ensemble does not clearly beat this, its extra features and members are not paying for themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC


class BaselineInputError(ValueError):
    """Texts or labels given to the baseline are unusable."""


class LinearSvcBaseline:
    """Word 1-2-gram + char_wb 2-5-gram TF-IDF (sublinear) feeding a LinearSVC.

    Not an ensemble member: it yields labels only (``decision_function`` gives margins if a caller
    wants scores), which is all the report compares.
    """

    name = "baseline (TF-IDF + LinearSVC)"

    def __init__(
        self,
        *,
        C: float = 1.0,
        min_df: int = 2,
        max_features_word: int | None = 50_000,
        max_features_char: int | None = 50_000,
        seed: int = 13,
    ) -> None:
        if C <= 0:
            raise BaselineInputError(f"C must be > 0, got {C}")
        if min_df < 1:
            raise BaselineInputError(f"min_df must be >= 1, got {min_df}")
        self.C = C
        self.min_df = min_df
        self.max_features_word = max_features_word
        self.max_features_char = max_features_char
        self.seed = seed
        self._pipeline: Pipeline | None = None

    def _build(self) -> Pipeline:
        features = FeatureUnion(
            [
                (
                    "word",
                    TfidfVectorizer(
                        analyzer="word",
                        ngram_range=(1, 2),
                        sublinear_tf=True,
                        min_df=self.min_df,
                        max_features=self.max_features_word,
                    ),
                ),
                (
                    "char",
                    TfidfVectorizer(
                        analyzer="char_wb",
                        ngram_range=(2, 5),
                        sublinear_tf=True,
                        min_df=self.min_df,
                        max_features=self.max_features_char,
                    ),
                ),
            ]
        )
        return Pipeline([("tfidf", features), ("svm", LinearSVC(C=self.C, random_state=self.seed))])

    @staticmethod
    def _check_texts(texts: Sequence[str]) -> list[str]:
        texts = list(texts)
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise BaselineInputError(f"texts must be strings; item {bad} is {type(texts[bad]).__name__}")
        return texts

    def fit(self, texts: Sequence[str], y: np.ndarray) -> LinearSvcBaseline:
        texts = self._check_texts(texts)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(texts):
            raise BaselineInputError(f"y must be 1-D with one label per text ({len(texts)}), got {y.shape}")
        if len(np.unique(y)) < 2:
            raise BaselineInputError("y must hold at least 2 distinct classes")
        pipeline = self._build()
        try:
            pipeline.fit(texts, y)
        except ValueError as err:  # e.g. an empty vocabulary: every term rarer than min_df
            raise BaselineInputError(f"baseline could not be fitted: {err}") from err
        self._pipeline = pipeline
        return self

    def _fitted(self) -> Pipeline:
        if self._pipeline is None:
            raise BaselineInputError("the baseline is not fitted yet: call fit() first")
        return self._pipeline

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted class labels, in the label space ``fit`` saw."""
        return self._fitted().predict(self._check_texts(texts))

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """SVM margins (not probabilities), for callers that want a ranking score."""
        return self._fitted().decision_function(self._check_texts(texts))
