"""Multi-label tags: one logistic regression per tag on the shared features, each with its own threshold.

A ticket may carry several tags ("billing", "bug", "urgent"...). Each tag gets a binary logistic
regression on the same design LogReg reads (TF-IDF plus the scaled dense families), through scikit-learn's
``OneVsRestClassifier``. A single 0.5 cut would starve rare tags, whose probabilities rarely get there, so
each tag's threshold is the one that maximises its F1 on the validation rows (0.5 when validation holds no
example of it). Tags seen on fewer than ``MIN_TAG_ROWS`` training tickets are not learned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, hamming_loss
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ticket_triage.features.base import FeatureSet

MIN_TAG_ROWS = 5
#: Thresholds tried per tag on the validation rows.
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)
#: Tags travel in these frame columns (one per source column), named so they cannot clash with others.
TAG_COLUMN_PREFIX = "tag_source__"


def tag_columns(sources: Sequence[str]) -> dict[str, str]:
    """The loader's extra columns for ``--tags`` sources: frame column name -> source column."""
    return {f"{TAG_COLUMN_PREFIX}{source}": source for source in sources}


def has_tags(frame: pd.DataFrame) -> bool:
    return any(str(c).startswith(TAG_COLUMN_PREFIX) for c in frame.columns)


def tag_sets(frame: pd.DataFrame) -> list[set[str]]:
    """Each row's tags: the non-empty values of its tag columns."""
    columns = [c for c in frame.columns if str(c).startswith(TAG_COLUMN_PREFIX)]
    out = []
    for values in frame[columns].itertuples(index=False):
        out.append({str(v).strip() for v in values if isinstance(v, str) and v.strip()})
    return out


def indicator(sets: Sequence[set[str]], tags: Sequence[str]) -> np.ndarray:
    index = {tag: j for j, tag in enumerate(tags)}
    y = np.zeros((len(sets), len(tags)), dtype=np.int8)
    for i, row in enumerate(sets):
        for tag in row:
            if tag in index:
                y[i, index[tag]] = 1
    return y


def learnable_tags(sets: Sequence[set[str]]) -> tuple[list[str], dict[str, int]]:
    """Tags with at least MIN_TAG_ROWS training tickets (sorted), and the rarer ones with their counts."""
    counts = Counter(tag for row in sets for tag in row)
    kept = sorted(t for t, n in counts.items() if n >= MIN_TAG_ROWS)
    return kept, {t: n for t, n in sorted(counts.items()) if n < MIN_TAG_ROWS}


def tag_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """The four multi-label figures: micro-F1, macro-F1 (over tags), Hamming loss, exact-match ratio."""
    return {
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "hamming_loss": float(hamming_loss(y_true, y_pred)),
        "exact_match": float(accuracy_score(y_true, y_pred)),
    }


def _best_threshold(p: np.ndarray, y: np.ndarray) -> float:
    if not y.any():
        return 0.5
    scores = [f1_score(y, p >= t, zero_division=0) for t in THRESHOLD_GRID]
    return float(THRESHOLD_GRID[int(np.argmax(scores))])


@dataclass
class TagModel:
    """Per-tag probabilities and thresholds; ``tags`` is the column order."""

    tags: list[str]
    dense_scale: float = 0.1
    C: float = 4.0
    seed: int = 13
    threads: int = 2
    thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rare: dict[str, int] = field(default_factory=dict)
    _scaler: StandardScaler | None = None
    _model: OneVsRestClassifier | None = None
    #: TF-IDF + one-vs-rest LinearSVC trained on the same rows, kept so evaluations can compare.
    baseline: Any = None

    def _design(self, features: FeatureSet) -> sp.csr_matrix:
        blocks: list[sp.spmatrix] = []
        if features.sparse is not None and features.sparse.shape[1]:
            blocks.append(sp.csr_matrix(features.sparse, dtype=np.float32))
        if self._scaler is not None:
            blocks.append(
                sp.csr_matrix((self._scaler.transform(features.dense) * self.dense_scale).astype(np.float32))
            )
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def fit(
        self, features: FeatureSet, y: np.ndarray, validation: tuple[FeatureSet, np.ndarray] | None
    ) -> TagModel:
        if y.shape != (len(features), len(self.tags)) or not len(self.tags):
            raise ValueError(f"tags: need a (rows, tags) indicator for {len(self.tags)} tags, got {y.shape}")
        if features.dense.ndim == 2 and features.dense.shape[1] and self.dense_scale > 0:
            self._scaler = StandardScaler().fit(features.dense)
        model = OneVsRestClassifier(LogisticRegression(C=self.C, max_iter=300, random_state=self.seed))
        with threadpool_limits(limits=self.threads):
            model.fit(self._design(features), y)
        self._model = model
        self.thresholds = np.full(len(self.tags), 0.5)
        if validation is not None and len(validation[0]):
            p = self.predict_proba(validation[0])
            self.thresholds = np.array(
                [_best_threshold(p[:, j], validation[1][:, j]) for j in range(len(self.tags))]
            )
        return self

    def predict_proba(self, features: FeatureSet) -> np.ndarray:
        if self._model is None:
            raise ValueError("the tag model is not fitted")
        with threadpool_limits(limits=self.threads):
            return np.asarray(self._model.predict_proba(self._design(features)), dtype=np.float64)

    def predict(self, features: FeatureSet) -> np.ndarray:
        return self.predict_proba(features) >= self.thresholds

    def chosen(self, probs: np.ndarray) -> list[tuple[str, float]]:
        """One ticket's tags above their thresholds, most probable first."""
        above = np.flatnonzero(probs >= self.thresholds)
        return [(self.tags[j], float(probs[j])) for j in above[np.argsort(-probs[above], kind="stable")]]


class TagBaseline:
    """TF-IDF (words, 1-2 grams) + one-vs-rest LinearSVC: the usual multi-label text baseline."""

    def __init__(self, seed: int = 13) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline
        from sklearn.svm import LinearSVC

        self.pipeline = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
            OneVsRestClassifier(LinearSVC(C=0.5, random_state=seed)),
        )

    def fit(self, texts: Sequence[str], y: np.ndarray) -> TagBaseline:
        self.pipeline.fit(list(texts), y)
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.pipeline.predict(list(texts))).astype(bool)


def tags_summary(model: TagModel, features: FeatureSet, sets: Sequence[set[str]]) -> dict[str, Any]:
    """The report's tags section: the model's and the baseline's figures on the same rows."""
    y = indicator(sets, model.tags)
    unknown = sum(len(row - set(model.tags)) for row in sets)
    out: dict[str, Any] = {
        "rows": len(sets),
        "tags": len(model.tags),
        "tags_not_learned": dict(model.rare),
        "tag_occurrences_outside_the_model": unknown,
        "thresholds": {tag: float(t) for tag, t in zip(model.tags, model.thresholds, strict=True)},
        "model": tag_metrics(y, model.predict(features)),
    }
    if model.baseline is not None:
        out["baseline"] = tag_metrics(y, model.baseline.predict(features.texts))
    return out
