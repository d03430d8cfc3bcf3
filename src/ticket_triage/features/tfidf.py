"""TF-IDF over word and character n-grams.

Routing often hinges on a few telling words ("refund", "password reset", "invoice"); word n-grams catch
them and their short phrases, while character n-grams within word boundaries survive typos, inflections
and product codes that a word vocabulary would split or miss. The sparse matrix feeds the linear member
directly; the pipeline reduces it with SVD for the tree members.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from ticket_triage.features.base import texts_of
from ticket_triage.features.registry import FamilyConfig, FamilySpec, register

FAMILY = "tfidf"


class TfidfFitError(ValueError):
    """The TF-IDF parameters are invalid or the training texts hold nothing to count."""


class TfidfFeatures(BaseEstimator, TransformerMixin):
    """Word (1..``word_ngram_max``) and ``char_wb`` TF-IDF side by side, as one float32 CSR matrix."""

    def __init__(
        self,
        word_ngram_max: int = 2,
        char_ngram_min: int = 2,
        char_ngram_max: int = 5,
        max_features_word: int = 50000,
        max_features_char: int = 50000,
        min_df: int = 2,
        sublinear_tf: bool = True,
    ) -> None:
        self.word_ngram_max = word_ngram_max
        self.char_ngram_min = char_ngram_min
        self.char_ngram_max = char_ngram_max
        self.max_features_word = max_features_word
        self.max_features_char = max_features_char
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf

    def fit(self, X: pd.DataFrame, y: object = None) -> TfidfFeatures:
        self._check_params()
        texts = texts_of(X)
        self.word_vectorizer_, word_min_df = self._fit_view("word", (1, self.word_ngram_max), texts)
        self.char_vectorizer_, char_min_df = self._fit_view(
            "char_wb", (self.char_ngram_min, self.char_ngram_max), texts
        )
        # Kept so a reader of a saved pipeline can see when the tiny-corpus fallback kicked in.
        self.min_df_used_ = {"word": word_min_df, "char": char_min_df}
        return self

    def transform(self, X: pd.DataFrame) -> sp.csr_matrix:
        check_is_fitted(self, ["word_vectorizer_", "char_vectorizer_"])
        texts = texts_of(X)
        if not texts:  # sklearn's TfidfTransformer refuses zero rows
            n_columns = len(self.word_vectorizer_.vocabulary_) + len(self.char_vectorizer_.vocabulary_)
            return sp.csr_matrix((0, n_columns), dtype=np.float32)
        word = self.word_vectorizer_.transform(texts)
        char = self.char_vectorizer_.transform(texts)
        return sp.hstack([word, char], format="csr", dtype=np.float32)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, ["word_vectorizer_", "char_vectorizer_"])
        word = [f"{FAMILY}__word__{t}" for t in self.word_vectorizer_.get_feature_names_out()]
        char = [f"{FAMILY}__char__{t}" for t in self.char_vectorizer_.get_feature_names_out()]
        return np.asarray(word + char, dtype=object)

    def _fit_view(
        self, analyzer: str, ngram_range: tuple[int, int], texts: list[str]
    ) -> tuple[TfidfVectorizer, int]:
        """Fit one view; on a corpus too small for ``min_df`` retry with ``min_df=1`` instead of failing."""
        attempts = [self.min_df, 1] if self.min_df > 1 else [1]
        for min_df in attempts:
            vectorizer = TfidfVectorizer(
                analyzer=analyzer,
                ngram_range=ngram_range,
                max_features=self.max_features_word if analyzer == "word" else self.max_features_char,
                min_df=min_df,
                sublinear_tf=self.sublinear_tf,
                lowercase=True,
                strip_accents="unicode",
                dtype=np.float32,
            )
            try:
                vectorizer.fit(texts)
            except ValueError:
                # Parameters were checked up front, so this is sklearn's "empty vocabulary"
                # (or min_df above the document count): try the next, looser min_df.
                continue
            return vectorizer, min_df
        raise TfidfFitError(
            f"TF-IDF {analyzer} view found no terms in {len(texts)} training text(s), even with min_df=1; "
            "the training texts are empty or hold no word characters"
        )

    def _check_params(self) -> None:
        ints = {
            "word_ngram_max": self.word_ngram_max,
            "char_ngram_min": self.char_ngram_min,
            "char_ngram_max": self.char_ngram_max,
            "max_features_word": self.max_features_word,
            "max_features_char": self.max_features_char,
            "min_df": self.min_df,
        }
        for name, value in ints.items():
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise TfidfFitError(f"TfidfFeatures.{name} must be an integer >= 1, got {value!r}")
        if self.char_ngram_min > self.char_ngram_max:
            raise TfidfFitError(
                f"TfidfFeatures.char_ngram_min ({self.char_ngram_min}) is above "
                f"char_ngram_max ({self.char_ngram_max})"
            )


class TfidfConfig(FamilyConfig):
    """The [tfidf] section of features.toml."""

    word_ngram_max: int = Field(2, ge=1, le=3)
    char_ngram_min: int = Field(2, ge=1)
    char_ngram_max: int = Field(5, ge=1, le=8)
    max_features_word: int = Field(50000, ge=100)
    max_features_char: int = Field(50000, ge=100)
    min_df: int = Field(2, ge=1)
    sublinear_tf: bool = True
    #: Read by the pipeline, not the family: the dense SVD view of TF-IDF the tree members get (0 = none).
    svd_components: int = Field(128, ge=0)


SPEC = register(FamilySpec(FAMILY, TfidfFeatures, TfidfConfig))
