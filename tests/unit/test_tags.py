"""Multi-label tags: per-tag thresholds, the four figures, and what is learned from which columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ticket_triage.features.base import FeatureSet
from ticket_triage.models.tags import (
    MIN_TAG_ROWS,
    TagBaseline,
    TagModel,
    indicator,
    learnable_tags,
    tag_columns,
    tag_metrics,
    tag_sets,
    tags_summary,
)

WORDS = {
    "billing": ["invoice", "refund", "charge"],
    "network": ["vpn", "wifi", "router"],
    "bug": ["crash", "error"],
}


def _tickets(n: int, seed: int) -> tuple[FeatureSet, list[set[str]]]:
    """Texts whose words give their tags away, as the TF-IDF-like sparse block plus one noise column."""
    rng = np.random.default_rng(seed)
    vocab = sorted({w for ws in WORDS.values() for w in ws} | {"hello", "please", "thanks"})
    texts, sets, rows = [], [], []
    for _ in range(n):
        tags = {t for t in WORDS if rng.random() < 0.35}
        words = [str(rng.choice(WORDS[t])) for t in sorted(tags)] + ["hello", "please"]
        texts.append(" ".join(words))
        sets.append(tags)
        rows.append([words.count(v) for v in vocab])
    sparse = sp.csr_matrix(np.array(rows, dtype=np.float32))
    dense = rng.normal(size=(n, 1))
    return FeatureSet(
        texts=texts, dense=dense, dense_names=["noise"], sparse=sparse, sparse_names=vocab
    ), sets


def test_words_that_give_a_tag_away_are_learned_with_thresholds_from_validation() -> None:
    train, train_sets = _tickets(300, 1)
    val, val_sets = _tickets(120, 2)
    test, test_sets = _tickets(200, 3)
    tags, rare = learnable_tags(train_sets)
    assert tags == ["billing", "bug", "network"] and rare == {}
    model = TagModel(tags=tags).fit(train, indicator(train_sets, tags), (val, indicator(val_sets, tags)))
    assert model.thresholds.shape == (3,) and ((model.thresholds > 0) & (model.thresholds < 1)).all()
    figures = tag_metrics(indicator(test_sets, tags), model.predict(test))
    assert figures["micro_f1"] > 0.95 and figures["exact_match"] > 0.9 and figures["hamming_loss"] < 0.05
    chosen = model.chosen(model.predict_proba(test)[0])
    assert {t for t, _ in chosen} == test_sets[0]
    assert [p for _, p in chosen] == sorted((p for _, p in chosen), reverse=True)


def test_rare_tags_are_not_learned_and_the_summary_says_how_many_occurrences_are_out() -> None:
    sets = [{"a"}] * MIN_TAG_ROWS + [{"b"}] * (MIN_TAG_ROWS - 1) + [set()]
    tags, rare = learnable_tags(sets)
    assert tags == ["a"] and rare == {"b": MIN_TAG_ROWS - 1}
    train, train_sets = _tickets(200, 4)
    model = TagModel(tags=["billing", "network"]).fit(
        train, indicator(train_sets, ["billing", "network"]), None
    )
    assert model.thresholds.tolist() == [0.5, 0.5]  # no validation rows: the plain cut
    model.baseline = TagBaseline().fit(train.texts, indicator(train_sets, model.tags))
    summary = tags_summary(model, train, train_sets)
    assert summary["tag_occurrences_outside_the_model"] == sum("bug" in s for s in train_sets)
    assert set(summary) >= {"model", "baseline", "thresholds"} and summary["rows"] == 200


def test_the_metrics_are_the_usual_multi_label_ones() -> None:
    y = np.array([[1, 0], [1, 1], [0, 0]])
    p = np.array([[1, 0], [1, 0], [0, 0]])
    m = tag_metrics(y, p)
    assert m["hamming_loss"] == pytest.approx(1 / 6) and m["exact_match"] == pytest.approx(2 / 3)
    assert m["micro_f1"] == pytest.approx(0.8)  # 2 right of 2 predicted, 2 of 3 true


def test_tag_values_come_from_every_tag_column_and_empty_cells_are_no_tag() -> None:
    columns = tag_columns(["tag_1", "tag_2"])
    frame = pd.DataFrame(
        {name: values for name, values in zip(columns, (["Bug", ""], [" VPN ", None]), strict=True)}
    )
    assert tag_sets(frame) == [{"Bug", "VPN"}, set()]
    with pytest.raises(ValueError, match="indicator"):
        TagModel(tags=["x"]).fit(_tickets(10, 5)[0], np.zeros((10, 2)), None)
