"""Why the model chose a queue: the words of a ticket that pushed the calibrated ensemble towards a label.

SHAP's Partition explainer with a text masker: words are hidden in nested groups (the text's own order
gives the hierarchy) and the whole model, every member and the calibration, is re-run on each masked copy.
A word's value is its Owen value for the label's calibrated probability: what it adds, on average over
the groups it sits in, to that probability. The values of all words sum to the probability of the full
ticket minus that of the ticket with every word hidden. The model is a black box here on purpose: the
fine-tuned encoder carries most of the weight, so per-member contributions (LogReg terms, tree gains)
would explain a part of the vote, not the vote.

Cost: one model pass over ``max_evals`` masked copies of the ticket (``TRIAGE_EXPLAIN_MAX_EVALS``). With
fewer evaluations than about twice the ticket's words, groups of neighbouring words share one value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Words are runs of \w; the separator after a word belongs to its token and is hidden with it.
_WORD = re.compile(r"\w+")
_SEPARATORS = r"\W+"


@dataclass(frozen=True)
class WordWeight:
    """One occurrence of a word in the explained text: ``text[start:end]``, and its value."""

    word: str
    start: int
    end: int
    weight: float


@dataclass(frozen=True)
class LabelEvidence:
    label: str
    probability: float
    #: The words that raised this label's probability most, strongest first (positive values only).
    words: list[WordWeight]


def _occurrences(tokens: Sequence[str]) -> list[tuple[int, int] | None]:
    """Character span of each token's word in the text the tokens rebuild (None: a token without one)."""
    spans: list[tuple[int, int] | None] = []
    at = 0
    for token in tokens:
        found = _WORD.match(token)
        spans.append(None if found is None else (at, at + found.end()))
        at += len(token)
    return spans


def explain_text(
    text: str,
    score: Callable[[list[str]], np.ndarray],
    columns: Sequence[int],
    labels: Sequence[str],
    *,
    top_words: int,
    max_evals: int,
) -> list[LabelEvidence]:
    """Evidence for each label in ``columns`` (indices into ``labels``).

    ``score`` maps texts (masked copies of ``text``) to calibrated probabilities, one row per text and
    one column per label.
    """
    import shap  # imported on first use: it loads numba, ~2 s, which plain predictions never need

    if max_evals < 3:
        raise ValueError(f"max_evals must be at least 3, got {max_evals}")
    wanted = list(columns)

    def model(texts: np.ndarray) -> np.ndarray:
        return np.asarray(score([str(t) for t in texts]), dtype=np.float64)[:, wanted]

    # Hidden words become one space (shap cannot mask with an empty token); runs of them collapse.
    masker = shap.maskers.Text(_SEPARATORS, mask_token=" ", collapse_mask_token=True)
    explainer = shap.explainers.Partition(model, masker)
    result = explainer([text], max_evals=max_evals, batch_size=max_evals, silent=True)
    tokens = list(result.data[0])
    values = np.asarray(result.values[0], dtype=np.float64).reshape(len(tokens), len(wanted))
    full = model(np.array([text]))[0]
    spans = _occurrences(tokens)
    out = []
    for j, column in enumerate(wanted):
        ranked = sorted(
            ((values[i, j], i) for i, span in enumerate(spans) if span is not None and values[i, j] > 0),
            key=lambda pair: (-pair[0], pair[1]),
        )[:top_words]
        words = []
        for weight, i in ranked:
            start, end = spans[i]  # type: ignore[misc]  # ranked holds only tokens with a word
            words.append(WordWeight(text[start:end], start, end, round(float(weight), 6)))
        out.append(LabelEvidence(str(labels[column]), round(float(full[j]), 6), words))
    return out
