"""Sentiment of the ticket text: TextBlob polarity and subjectivity.

Angry, emotional tickets ("terrible service, third time I write") are more often complaints or
escalations and deserve a higher priority than calm how-to questions, even when the words that
name the topic are the same. TextBlob's lexicon is English only; other languages score 0 (neutral).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from ticket_triage.features.base import require_text_frame, texts_of
from ticket_triage.features.registry import FamilySpec, register

FAMILY = "sentiment"
FEATURES = ("polarity", "subjectivity")
# Sentiment of a ticket is settled long before 10,000 characters; the cut keeps pasted logs cheap.
MAX_CHARS = 10_000


class SentimentFeatures(BaseEstimator, TransformerMixin):
    """Polarity in [-1, 1] and subjectivity in [0, 1] per ticket; stateless, so ``fit`` learns nothing."""

    def __init__(self, max_chars: int = MAX_CHARS) -> None:
        self.max_chars = max_chars

    def fit(self, X: pd.DataFrame, y: object = None) -> SentimentFeatures:
        self._check(X)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        from textblob import TextBlob  # ~1 s of imports (NLTK): only paid when the family is on

        self._check(X)
        out = np.zeros((len(X), len(FEATURES)), dtype=np.float32)
        for i, text in enumerate(texts_of(X)):
            if text.strip():
                polarity, subjectivity = TextBlob(text[: self.max_chars]).sentiment
                out[i] = (polarity, subjectivity)
        out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
        out[:, 0] = np.clip(out[:, 0], -1.0, 1.0)
        out[:, 1] = np.clip(out[:, 1], 0.0, 1.0)
        return out

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray([f"{FAMILY}__{name}" for name in FEATURES], dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless: usable without fit

    def _check(self, X: pd.DataFrame) -> None:
        require_text_frame(X, "SentimentFeatures")
        if isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int) or self.max_chars < 1:
            raise ValueError(f"SentimentFeatures.max_chars must be an integer >= 1, got {self.max_chars!r}")


SPEC = register(FamilySpec(FAMILY, SentimentFeatures, monitored=r"sentiment__.*"))
