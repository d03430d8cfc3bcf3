"""SHAP word evidence on a model whose reasons are known: the named words are the ones that move it."""

from __future__ import annotations

import numpy as np
import pytest

from ticket_triage.data.canonical import field_span, join_text
from ticket_triage.models.explanation import explain_text

LABELS = ["billing", "network", "other"]


def _score(texts: list[str]) -> np.ndarray:
    """A toy model: "invoice" and "refund" point to billing, "vpn" to network, nothing else counts."""
    out = []
    for text in texts:
        words = text.lower().split()
        logits = np.array(
            [2.0 * words.count("invoice") + 1.0 * words.count("refund"), 1.5 * words.count("vpn"), 0.5]
        )
        p = np.exp(logits - logits.max())
        out.append(p / p.sum())
    return np.array(out)


def test_the_words_that_move_each_label_are_named_with_their_spans() -> None:
    text = "Please check the invoice and my refund , also the vpn is slow today"
    [billing, network] = explain_text(text, _score, [0, 1], LABELS, top_words=3, max_evals=200)
    assert billing.label == "billing" and network.label == "network"
    assert billing.probability == pytest.approx(_score([text])[0, 0], abs=1e-6)
    assert [w.word for w in billing.words[:2]] == ["invoice", "refund"]
    assert billing.words[0].weight > billing.words[1].weight > 0
    assert network.words[0].word == "vpn"
    for evidence in (billing, network):
        for w in evidence.words:
            assert text[w.start : w.end] == w.word
            assert w.weight > 0  # only words that raise the label are named


def test_a_text_without_any_telling_word_names_none() -> None:
    [billing] = explain_text("hello there", _score, [0], LABELS, top_words=3, max_evals=50)
    assert billing.words == []


def test_too_few_evaluations_are_refused() -> None:
    with pytest.raises(ValueError, match="max_evals"):
        explain_text("invoice", _score, [0], LABELS, top_words=3, max_evals=2)


def test_a_span_of_the_joined_text_maps_back_to_its_field_as_sent() -> None:
    fields = [("subject", "  Invoice wrong "), ("description", "\n\nThe refund never came.")]
    joined = join_text(v for _, v in fields)
    for word, field in (("Invoice", "subject"), ("refund", "description")):
        start = joined.index(word)
        name, a, b = field_span(fields, start, start + len(word))  # type: ignore[misc]
        assert name == field and dict(fields)[name][a:b] == word
    assert field_span([("subject", None), ("description", "vpn down")], 0, 3) == ("description", 0, 3)
    assert field_span(fields, joined.index("wrong"), joined.index("The") + 3) is None  # across the joiner
