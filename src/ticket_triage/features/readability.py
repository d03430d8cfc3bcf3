"""Readability of the ticket text: Flesch scores, sentence and word lengths, syllables.

How a ticket is written says something about who wrote it and what it is: terse one-liners
("can't log in") are usually access problems, long dense prose tends to be billing disputes, legal
complaints or technical reports pasted from logs. These shape features let the tree members use that.

The Flesch formulas are computed here rather than with ``textstat``: textstat 0.7.13 (checked) tries
to download NLTK's CMU dictionary on first use, which fails offline. Syllables come from ``pyphen``'s
bundled en_US hyphenation dictionary (hyphenation points + 1), the same fallback textstat uses.
Non-English text is counted with the English rules; the numbers stay finite and bounded either way.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyphen
from sklearn.base import BaseEstimator, TransformerMixin

from ticket_triage.features.base import require_text_frame, texts_of
from ticket_triage.features.registry import FamilySpec, register

FAMILY = "readability"
# Ratios are settled long before 10,000 characters; the cut keeps a pasted 50,000-character log cheap.
MAX_CHARS = 10_000
# Words longer than this are hyphenated only up to here (a 10,000-letter token took ~30 ms).
MAX_SYLLABLE_WORD = 40
LONG_WORD_CHARS = 6  # "long word" = more than this many characters

# Feature -> (low, high) clip range. Texts without any word get 0 for every feature.
# Reading ease tops out at 121.22 (one one-syllable word per sentence); below -100 it no longer
# tells texts apart. The other limits are far beyond ordinary prose and only tame degenerate input
# (a 10,000-character token, thousands of "!" separated fragments, unsegmented CJK text).
BOUNDS: dict[str, tuple[float, float]] = {
    "flesch_reading_ease": (-100.0, 121.22),
    "flesch_kincaid_grade": (-3.4, 50.0),
    "sentence_count": (0.0, 500.0),
    "words_per_sentence": (0.0, 200.0),
    "chars_per_word": (0.0, 30.0),
    "long_word_share": (0.0, 1.0),
    "syllables_per_word": (0.0, 10.0),
}
FEATURES = tuple(BOUNDS)

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")  # apostrophes (ASCII or typographic) stay inside a word
# A sentence ends at . ! ? … followed by whitespace or the end, at CJK full stops, or at a line break
# (ticket subjects rarely end with punctuation). "12.50" and "v2.1" do not end a sentence.
# A run of marks is tried once, from its first mark and whole (possessive): a later start in the same
# run meets the same following character, and retrying each made "......x" quadratic.
_SENTENCE_END = re.compile(r"(?<![.!?\u2026])[.!?\u2026]++(?=\s|$)|[\u3002\uff01\uff1f]+|\n+")
_HAS_WORD = re.compile(r"[^\W_]")
_HYPHENATOR = pyphen.Pyphen(lang="en_US")


def count_sentences(text: str) -> int:
    """Segments between sentence ends that hold at least one word character."""
    return sum(1 for part in _SENTENCE_END.split(text) if _HAS_WORD.search(part))


def _syllables(word: str) -> int:
    return len(_HYPHENATOR.positions(word[:MAX_SYLLABLE_WORD].lower())) + 1


def _row(text: str) -> tuple[float, ...]:
    words = _WORD.findall(text)
    if not words:
        return (0.0,) * len(FEATURES)
    n_words = len(words)
    n_sentences = max(1, count_sentences(text))
    words_per_sentence = n_words / n_sentences
    syllables_per_word = sum(_syllables(w) for w in words) / n_words
    return (
        206.835 - 1.015 * words_per_sentence - 84.6 * syllables_per_word,
        0.39 * words_per_sentence + 11.8 * syllables_per_word - 15.59,
        float(n_sentences),
        words_per_sentence,
        sum(len(w) for w in words) / n_words,
        sum(len(w) > LONG_WORD_CHARS for w in words) / n_words,
        syllables_per_word,
    )


class ReadabilityFeatures(BaseEstimator, TransformerMixin):
    """Seven clipped readability measures per ticket (see ``BOUNDS``); stateless."""

    def __init__(self, max_chars: int = MAX_CHARS) -> None:
        self.max_chars = max_chars

    def fit(self, X: pd.DataFrame, y: object = None) -> ReadabilityFeatures:
        self._check(X)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        self._check(X)
        rows = [_row(text[: self.max_chars]) for text in texts_of(X)]
        out = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURES))
        low = np.array([BOUNDS[f][0] for f in FEATURES])
        high = np.array([BOUNDS[f][1] for f in FEATURES])
        out = np.clip(np.nan_to_num(out, nan=0.0), low, high)
        return out.astype(np.float32)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray([f"{FAMILY}__{name}" for name in FEATURES], dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless: usable without fit

    def _check(self, X: pd.DataFrame) -> None:
        require_text_frame(X, "ReadabilityFeatures")
        if isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int) or self.max_chars < 1:
            raise ValueError(f"ReadabilityFeatures.max_chars must be an integer >= 1, got {self.max_chars!r}")


SPEC = register(FamilySpec(FAMILY, ReadabilityFeatures, monitored=r"readability__flesch.*"))
