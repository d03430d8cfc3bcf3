"""Weak priority: each labelling function votes on its own signal, the LabelModel combines the votes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ticket_triage.data.schema import PRIORITY, TEXT, TIER, URGENCY
from ticket_triage.data.weak_priority import (
    ABSTAIN,
    HIGH,
    LOW,
    MEDIUM,
    agreement,
    apply_weak_priority,
    label_matrix,
    lf_customer_tier,
    lf_declared_urgency,
    lf_outage,
    lf_shouting,
)


def _row(text: str = "", tier: str | None = None, urgency: str | None = None) -> pd.Series:
    return pd.Series({TEXT: text, TIER: tier, URGENCY: urgency})


def test_each_function_votes_on_its_signal_and_abstains_without_it() -> None:
    assert lf_outage(_row("Our portal is DOWN since 9am")) == HIGH
    assert lf_outage(_row("Der Server ist ausgefallen")) == HIGH  # German tickets too
    assert lf_outage(_row("Please send the invoice")) == ABSTAIN
    assert lf_declared_urgency(_row(urgency="Critical")) == HIGH
    assert lf_declared_urgency(_row(urgency="low")) == LOW
    assert lf_declared_urgency(_row(urgency="whenever")) == ABSTAIN
    assert lf_customer_tier(_row(tier="Enterprise")) == HIGH
    assert lf_customer_tier(_row(tier="free")) == LOW
    assert lf_customer_tier(_row()) == ABSTAIN
    assert lf_shouting(_row("THIS IS STILL BROKEN")) == HIGH
    assert lf_shouting(_row("VPN is slow")) == ABSTAIN


def _tickets() -> pd.DataFrame:
    high = ["Outage: the site is down, urgent!!", "Critical outage, fix immediately", "System down ASAP"]
    low = ["How do I export a report? Just wondering", "Request for documentation of the API, no rush"]
    medium = ["There is an issue with the slow dashboard", "Small problem with a report filter"]
    texts = (high * 12) + (low * 12) + (medium * 12) + ["Hello"] * 6
    truth = ["high"] * 36 + ["low"] * 24 + ["medium"] * 24 + ["medium"] * 6
    return pd.DataFrame({TEXT: texts, TIER: None, URGENCY: None, PRIORITY: truth})


def test_the_label_model_turns_votes_into_labels_and_scores_them_against_real_ones() -> None:
    frame = _tickets()
    out, weak = apply_weak_priority(frame, seed=1)
    labels = out[PRIORITY].tolist()
    assert labels[0] == "high" and labels[36] == "low" and labels[60] == "medium"
    assert labels[-1] is None  # no function fires on "Hello": no weak label, not a guess
    assert weak.coverage == pytest.approx(84 / 90)
    assert weak.agreement is not None
    assert weak.agreement["rows"] == 84 and weak.agreement["accuracy"] == 1.0
    assert weak.agreement["kappa"] == pytest.approx(1.0)
    by_name = {f["name"]: f for f in weak.functions}
    assert by_name["outage"]["votes"] == ["high"] and by_name["outage"]["coverage"] > 0
    assert by_name["declared_urgency"]["coverage"] == 0.0  # no urgency column in this export
    assert by_name["urgent_words"]["overlap"] > 0  # fires on the same tickets as outage
    assert frame[PRIORITY].iloc[-1] == "medium"  # the input frame is left as it was


def test_a_matrix_with_no_vote_at_all_is_refused() -> None:
    frame = pd.DataFrame({TEXT: ["hello", "thanks"], TIER: None, URGENCY: None})
    assert (label_matrix(frame)[0] == ABSTAIN).all()
    with pytest.raises(ValueError, match="no labelling function fired"):
        apply_weak_priority(frame, seed=1)


def test_agreement_counts_only_rows_with_both_labels() -> None:
    weak = np.array([HIGH, LOW, ABSTAIN, MEDIUM])
    gold = np.array([HIGH, MEDIUM, LOW, ABSTAIN])
    figures = agreement(weak, gold)
    assert figures["rows"] == 2 and figures["accuracy"] == 0.5
