"""Behavioural checks of a model trained on real tickets: invariance and direction, not just accuracy."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ticket_triage.data.loader import load_tickets
from ticket_triage.data.schema import TEXT, ColumnMap

# Urgency words this dataset ties to high priority. ("escalate", "manager" are not among them: in these
# tickets they come with medium or low priority, so a model trained on them rightly does not read them so.)
ESCALATION = "URGENT: critical outage, our production system is down and we need help immediately!"


@pytest.fixture(scope="module")
def english(synthetic_sample: Path) -> pd.DataFrame:
    columns = ColumnMap(text=("subject", "body"), label="queue", priority="priority", id="id")
    frame = load_tickets([synthetic_sample], columns, require_label=True).frame
    raw = pd.read_csv(synthetic_sample)
    return frame[(raw["language"] == "en").to_numpy()].head(60).reset_index(drop=True)


def _probs(trained, frame: pd.DataFrame, target: str) -> np.ndarray:
    return trained.targets[target].model.predict_proba(trained.pipeline.transform(frame))


def _with_text(frame: pd.DataFrame, change) -> pd.DataFrame:
    out = frame.copy()
    out[TEXT] = [change(t) for t in frame[TEXT]]
    return out


def test_extra_whitespace_does_not_change_the_category(trained, english: pd.DataFrame) -> None:
    base = _probs(trained, english, "category")
    spaced = _probs(trained, _with_text(english, lambda t: "  " + re.sub(r" ", "  ", t) + " \n"), "category")
    agreement = (base.argmax(1) == spaced.argmax(1)).mean()
    assert agreement >= 0.95, f"category changed for {1 - agreement:.0%} of tickets with doubled spaces"
    assert np.abs(base - spaced).max(axis=1).mean() < 0.05


def test_lowercasing_keeps_the_category(trained, english: pd.DataFrame) -> None:
    """Lowercase typing must not move the queue. (ALL CAPS is not tested for invariance: shouting is read
    on purpose by the capitals features, and spaCy's entity tagger depends on case.)"""
    base = _probs(trained, english, "category")
    lowered = _probs(trained, _with_text(english, str.lower), "category")
    agreement = (base.argmax(1) == lowered.argmax(1)).mean()
    assert agreement >= 0.9, f"category changed for {1 - agreement:.0%} of lowercased tickets"


def test_escalation_words_do_not_lower_high_priority(trained, english: pd.DataFrame) -> None:
    """Prefixing urgent words raises P(high) clearly on average and lowers it by more than 0.1 rarely.

    Not "never": the tree members read embedding dimensions, which the prefix moves in every direction,
    so a few tickets lose a little; the text members (BERT, LogReg) never lowered it in our checks.
    """
    labels = trained.targets["priority"].model.labels
    high = labels.index("high")
    base_probs = _probs(trained, english, "priority")
    escalated_probs = _probs(trained, _with_text(english, lambda t: f"{ESCALATION}\n{t}"), "priority")
    base, escalated = base_probs[:, high], escalated_probs[:, high]
    drop = base - escalated
    print(
        f"P(high): mean {base.mean():.3f} -> {escalated.mean():.3f}; largest drop {drop.max():.3f}; "
        f"share dropping > 0.1: {(drop > 0.1).mean():.1%}"
    )
    assert escalated.mean() > base.mean() + 0.05, "urgent words should raise P(high) clearly on average"
    assert (drop > 0.1).mean() <= 0.05, f"P(high) fell by > 0.1 for {(drop > 0.1).mean():.0%} of tickets"
    assert drop.max() < 0.25, f"P(high) fell by up to {drop.max():.3f}"
    low = labels.index("low")
    assert not ((base_probs.argmax(1) == high) & (escalated_probs.argmax(1) == low)).any()


def test_probabilities_are_valid_for_odd_tickets(trained) -> None:
    odd = pd.DataFrame(
        {TEXT: ["", "?!", "Passwort vergessen, bitte dringend zurücksetzen", "x" * 50_000, "退款 请求 🙏"]}
    )
    odd["created_at"] = pd.NaT
    for column in ("channel", "customer_tier", "urgency"):
        odd[column] = None
    for target in ("category", "priority"):
        probs = _probs(trained, odd, target)
        assert np.isfinite(probs).all()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
