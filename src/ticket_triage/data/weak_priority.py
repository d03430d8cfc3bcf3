"""Priority without labels: labelling functions vote low / medium / high, Snorkel's LabelModel combines them.

Each function looks at one kind of signal and abstains when it sees none. The LabelModel learns how often
each function agrees with the others (their accuracies and correlations) from the votes alone, then turns
the votes of each ticket into a label. That is the point of using it over a hand-weighted sum: a function
that fires often but disagrees with the rest gets little say, without anyone choosing its weight.

A ticket on which no function fires (or whose votes tie) gets no weak label and does not train the
priority target.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ticket_triage.data.schema import PRIORITY, TEXT, TIER, URGENCY

LEVELS = ("low", "medium", "high")
ABSTAIN, LOW, MEDIUM, HIGH = -1, 0, 1, 2


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


#: English and German (the synthetic exports hold both). Word starts only, so "downtime" counts as "down".
OUTAGE = _words(
    r"\b(outage|down\b|downtime|not working|offline|unavailable|crash|breach|unauthori[sz]ed|data loss|"
    r"disruption|ausfall|ausgefallen|funktioniert nicht|nicht erreichbar|absturz|abgestürzt|"
    r"sicherheitsverletzung|unbefugt|störung)"
)
URGENT = _words(
    r"\b(urgent|urgently|asap|immediately|critical|emergency|as soon as possible|right away|dringend|"
    r"sofort|umgehend|kritisch|notfall)"
)
ESCALATION = _words(
    r"\b(escalat|manager|complaint|unacceptable|lawyer|legal action|cancel my|beschwerde|inakzeptabel|"
    r"anwalt|kündig)"
)
INFORMATION = _words(
    r"\b(request(ing)? (for )?(information|documentation|details)|how (do|can|to) |wondering|would like to "
    r"know|inquiry|enquiry|looking for (guidance|information)|anfrage|informationen|möchte wissen|"
    r"dokumentation|erkundigen)"
)
ISSUE = _words(r"\b(issue|problem|slow|bug|glitch|fehler|langsam|problem)")
ERROR_CODE = _words(r"\b(error|err|code|fehler)\s*[:#-]?\s*\d{3,}\b|\b0x[0-9a-f]{4,}\b|\b[45]\d\d error\b")
SHOUTED = re.compile(r"\b[A-ZÄÖÜ]{4,}\b")
HIGH_TIERS = frozenset({"platinum", "enterprise", "premium", "gold", "vip", "strategic"})
LOW_TIERS = frozenset({"free", "basic", "trial", "bronze"})
URGENCY_LEVELS = {
    "critical": HIGH, "urgent": HIGH, "high": HIGH, "p1": HIGH, "p2": HIGH,
    "medium": MEDIUM, "normal": MEDIUM, "moderate": MEDIUM, "p3": MEDIUM,
    "low": LOW, "minor": LOW, "p4": LOW, "p5": LOW,
}  # fmt: skip


def _text(row: pd.Series) -> str:
    value = row.get(TEXT)
    return value if isinstance(value, str) else ""


def _plain(row: pd.Series, column: str) -> str:
    value = row.get(column)
    return value.strip().lower() if isinstance(value, str) else ""


def lf_outage(row: pd.Series) -> int:
    return HIGH if OUTAGE.search(_text(row)) else ABSTAIN


def lf_urgent_words(row: pd.Series) -> int:
    return HIGH if URGENT.search(_text(row)) else ABSTAIN


def lf_escalation(row: pd.Series) -> int:
    return HIGH if ESCALATION.search(_text(row)) else ABSTAIN


def lf_declared_urgency(row: pd.Series) -> int:
    return URGENCY_LEVELS.get(_plain(row, URGENCY), ABSTAIN)


def lf_customer_tier(row: pd.Series) -> int:
    tier = _plain(row, TIER)
    return HIGH if tier in HIGH_TIERS else LOW if tier in LOW_TIERS else ABSTAIN


def lf_error_code(row: pd.Series) -> int:
    return MEDIUM if ERROR_CODE.search(_text(row)) else ABSTAIN


def lf_shouting(row: pd.Series) -> int:
    text = _text(row)
    return HIGH if "!!" in text or len(SHOUTED.findall(text)) >= 3 else ABSTAIN


def lf_negative_sentiment(row: pd.Series) -> int:
    from textblob import TextBlob

    text = _text(row)
    polarity = TextBlob(text).sentiment.polarity if text else 0.0  # English lexicon: German reads ~0
    return HIGH if polarity <= -0.3 else LOW if polarity >= 0.4 else ABSTAIN


def lf_information_request(row: pd.Series) -> int:
    return LOW if INFORMATION.search(_text(row)) else ABSTAIN


def lf_issue_words(row: pd.Series) -> int:
    text = _text(row)
    return MEDIUM if ISSUE.search(text) and not OUTAGE.search(text) else ABSTAIN


LABELLING_FUNCTIONS: tuple[Callable[[pd.Series], int], ...] = (
    lf_outage,
    lf_urgent_words,
    lf_escalation,
    lf_declared_urgency,
    lf_customer_tier,
    lf_error_code,
    lf_shouting,
    lf_negative_sentiment,
    lf_information_request,
    lf_issue_words,
)


@dataclass
class WeakPriority:
    """The weak labels (level names, None where there is none) and the figures the report shows."""

    labels: list[str | None]
    functions: list[dict[str, Any]]
    coverage: float
    agreement: dict[str, Any] | None


def label_matrix(frame: pd.DataFrame) -> tuple[np.ndarray, list[Any]]:
    """(rows, functions) votes in -1..2, through Snorkel's applier (one pass per row)."""
    from snorkel.labeling import PandasLFApplier, labeling_function

    lfs = [labeling_function(name=f.__name__.removeprefix("lf_"))(f) for f in LABELLING_FUNCTIONS]
    matrix = PandasLFApplier(lfs).apply(frame, progress_bar=False)
    return np.asarray(matrix, dtype=np.int64), lfs


def weak_priority(frame: pd.DataFrame, *, seed: int, truth: pd.Series | None = None) -> WeakPriority:
    """Weak low/medium/high labels for every ticket of ``frame`` (the loader's frame: TEXT, URGENCY, TIER).

    With ``truth`` (real priority names), the report also gives each function's accuracy and the weak
    labels' agreement with the real ones.
    """
    from snorkel.labeling import LFAnalysis
    from snorkel.labeling.model import LabelModel

    matrix, lfs = label_matrix(frame)
    if not (matrix != ABSTAIN).any():
        raise ValueError("--weak-priority: no labelling function fired on any ticket; no priority to learn")
    model = LabelModel(cardinality=len(LEVELS), verbose=False)
    model.fit(matrix, n_epochs=500, lr=0.01, seed=seed, progress_bar=False)
    predicted = model.predict(matrix, tie_break_policy="abstain")
    labels = [None if p == ABSTAIN else LEVELS[int(p)] for p in predicted]

    gold = None
    if truth is not None:
        index = {name: i for i, name in enumerate(LEVELS)}
        gold = np.array([index.get(str(v).strip().lower(), ABSTAIN) for v in truth], dtype=np.int64)
    summary = LFAnalysis(L=matrix, lfs=lfs).lf_summary(Y=None if gold is None or (gold < 0).any() else gold)
    functions = []
    for name, row in summary.iterrows():
        entry = {
            "name": str(name),
            "votes": sorted(LEVELS[int(v)] for v in row["Polarity"]),
            "coverage": float(row["Coverage"]),
            "overlap": float(row["Overlaps"]),
            "conflict": float(row["Conflicts"]),
        }
        if "Emp. Acc." in row:
            entry["accuracy"] = float(row["Emp. Acc."])
        functions.append(entry)
    has_label = predicted != ABSTAIN
    return WeakPriority(
        labels=labels,
        functions=functions,
        coverage=float(has_label.mean()),
        agreement=None if gold is None else agreement(predicted, gold),
    )


def agreement(weak: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    """Accuracy and Cohen's kappa of the weak labels on the rows that have both."""
    from sklearn.metrics import cohen_kappa_score

    both = (weak != ABSTAIN) & (gold != ABSTAIN)
    if not both.any():
        return {"rows": 0, "accuracy": None, "kappa": None}
    return {
        "rows": int(both.sum()),
        "accuracy": float((weak[both] == gold[both]).mean()),
        "kappa": float(cohen_kappa_score(gold[both], weak[both], labels=list(range(len(LEVELS))))),
    }


def apply_weak_priority(frame: pd.DataFrame, *, seed: int) -> tuple[pd.DataFrame, WeakPriority]:
    """``frame`` with its priority column replaced by weak labels (a real one, if any, only scores them)."""
    truth = frame[PRIORITY] if PRIORITY in frame.columns and frame[PRIORITY].notna().any() else None
    result = weak_priority(frame, seed=seed, truth=truth)
    out = frame.copy()
    out[PRIORITY] = pd.Series(result.labels, index=frame.index, dtype=object)
    return out, result
