"""Text feature families: shape/name contract, determinism, awkward input, pickling, and one check each
that the features mean what they claim."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone

from ticket_triage.features.embeddings import EmbeddingsConfigError, SentenceEmbeddings
from ticket_triage.features.entities import UPOS_TAGS, EntityFeatures
from ticket_triage.features.tfidf import TfidfFeatures, TfidfFitError
from ticket_triage.features.topics import TopicFeatures, TopicFitError

FAMILIES = ("tfidf", "embeddings", "entities", "topics")

_THEMES = {
    "billing": [
        "I was charged twice for my subscription, please refund the second payment",
        "My invoice shows the wrong amount, I need a refund for the difference",
        "Why was my credit card billed again this month? I want my money back",
        "The payment failed but the invoice still says overdue",
    ],
    "access": [
        "I cannot log in, the password reset email never arrives",
        "My account is locked after too many login attempts",
        "Two factor authentication code is not accepted when I sign in",
        "Forgot my password and the reset link has expired",
    ],
    "delivery": [
        "My order has not arrived yet, the tracking number shows no updates",
        "The parcel was delivered to the wrong address in Berlin",
        "Shipping is delayed for two weeks, where is my package?",
        "The courier lost my delivery, please send a replacement",
    ],
    "bug": [
        "The app crashes when I open the settings page on Android",
        "Export to CSV throws an error 500 since the last update",
        "The dashboard is very slow and the charts do not load",
        "Clicking save does nothing, the form shows a blank error",
    ],
}
TRAIN_TEXTS = [f"{t} (ticket {i})" for i in range(3) for texts in _THEMES.values() for t in texts]

_SENTENCE = "Hello, my refund for order 1234 has not arrived and I need help with my account today. "
LONG_TEXT = (_SENTENCE * (50_000 // len(_SENTENCE) + 1))[:50_000]
EDGE_TEXTS = [
    "",
    "Meine Rechnung ist falsch, bitte erstatten Sie mir den doppelt abgebuchten Betrag.",
    "我的账户被锁定了\uff0c请帮忙 🙏😡",
    LONG_TEXT,
]


def frame(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"text": texts})


TRAIN = frame(TRAIN_TEXTS)


def dense(out: np.ndarray | sp.csr_matrix) -> np.ndarray:
    return out.toarray() if sp.issparse(out) else np.asarray(out)


def _build(family: str) -> BaseEstimator:
    makers: dict[str, Callable[[], BaseEstimator]] = {
        "tfidf": lambda: TfidfFeatures(max_features_word=2000, max_features_char=2000),
        "embeddings": lambda: SentenceEmbeddings(batch_size=16, precision="bf16"),
        "entities": lambda: EntityFeatures(batch_size=16),
        "topics": lambda: TopicFeatures(n_topics=4, max_features=300, max_iter=5, keywords_per_topic=5),
    }
    return makers[family]().fit(TRAIN)


@pytest.fixture(scope="module")
def fitted() -> dict[str, BaseEstimator]:
    """Each family fitted once on the small corpus; heavy models load here and are reused."""
    return {family: _build(family) for family in FAMILIES}


# ---------------------------------------------------------------- contract shared by every family


@pytest.mark.parametrize("family", FAMILIES)
def test_names_match_columns_and_carry_family_prefix(fitted: dict, family: str) -> None:
    est = fitted[family]
    out = est.transform(TRAIN)
    names = est.get_feature_names_out()
    assert out.shape == (len(TRAIN_TEXTS), len(names))
    assert all(str(n).startswith(f"{family}__") for n in names)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("family", FAMILIES)
def test_output_type_is_float32_and_tfidf_is_csr(fitted: dict, family: str) -> None:
    out = fitted[family].transform(TRAIN.iloc[:3])
    assert out.dtype == np.float32
    assert isinstance(out, sp.csr_matrix) == (family == "tfidf")


@pytest.mark.parametrize("family", FAMILIES)
def test_same_input_gives_identical_output_even_after_refitting_a_clone(fitted: dict, family: str) -> None:
    est = fitted[family]
    first = dense(est.transform(TRAIN))
    again = dense(est.transform(TRAIN))
    refit = dense(clone(est).fit(TRAIN).transform(TRAIN))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, refit)


@pytest.mark.parametrize("family", FAMILIES)
def test_empty_foreign_emoji_and_50k_texts_give_finite_rows(fitted: dict, family: str) -> None:
    est = fitted[family]
    out = dense(est.transform(frame(EDGE_TEXTS)))
    assert out.shape == (len(EDGE_TEXTS), len(est.get_feature_names_out()))
    assert np.isfinite(out).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_single_row_frame_fits_and_transforms(family: str) -> None:
    est = clone(_build(family))
    one = frame(["Please refund my last payment, it was charged twice"])
    out = dense(est.fit(one).transform(one))
    assert out.shape == (1, len(est.get_feature_names_out()))
    assert np.isfinite(out).all()
    assert np.abs(out).sum() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_pickle_round_trip_gives_same_transform(fitted: dict, family: str) -> None:
    est = fitted[family]
    blob = pickle.dumps(est)
    restored = pickle.loads(blob)
    x = frame([*TRAIN_TEXTS[:5], *EDGE_TEXTS[:3]])
    np.testing.assert_array_equal(dense(restored.transform(x)), dense(est.transform(x)))
    np.testing.assert_array_equal(restored.get_feature_names_out(), est.get_feature_names_out())
    if family in ("embeddings", "entities"):
        assert len(blob) < 20_000, f"{family} pickle is {len(blob)} bytes: the model leaked into it"


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_rows_give_zero_row_output(fitted: dict, family: str) -> None:
    est = fitted[family]
    out = est.transform(frame([]))
    assert out.shape == (0, len(est.get_feature_names_out()))


# ---------------------------------------------------------------- tfidf


def test_tfidf_vocabulary_word_lights_up_its_named_column(fitted: dict) -> None:
    est = fitted["tfidf"]
    names = list(est.get_feature_names_out())
    col = names.index("tfidf__word__refund")
    out = est.transform(frame(["I want a refund", "The app crashes on start"])).toarray()
    assert out[0, col] > 0
    assert out[1, col] == 0
    assert any(n.startswith("tfidf__char__") for n in names)


def test_tfidf_accents_and_case_are_folded(fitted: dict) -> None:
    est = fitted["tfidf"]
    plain = est.transform(frame(["refund invoice"])).toarray()
    styled = est.transform(frame(["RÉFUND ÍNVOICE"])).toarray()
    np.testing.assert_array_equal(plain, styled)


def test_tfidf_tiny_corpus_falls_back_to_min_df_one() -> None:
    est = TfidfFeatures(min_df=5).fit(frame(["refund please", "login broken"]))
    assert est.min_df_used_ == {"word": 1, "char": 1}
    assert "tfidf__word__refund" in set(est.get_feature_names_out())


def test_tfidf_keeps_min_df_when_corpus_is_big_enough(fitted: dict) -> None:
    assert fitted["tfidf"].min_df_used_ == {"word": 2, "char": 2}
    once = TfidfFeatures(min_df=2).fit(frame([*TRAIN_TEXTS, "zyxwv"]))
    names = set(once.get_feature_names_out())
    assert "tfidf__word__zyxwv" not in names
    assert "tfidf__word__refund" in names


def test_tfidf_rejects_empty_corpus_and_bad_params() -> None:
    with pytest.raises(TfidfFitError, match="no terms"):
        TfidfFeatures().fit(frame(["", ""]))
    with pytest.raises(TfidfFitError, match="char_ngram_min"):
        TfidfFeatures(char_ngram_min=6, char_ngram_max=3).fit(TRAIN)


# ---------------------------------------------------------------- embeddings


@pytest.fixture(scope="module")
def fp32_embeddings() -> SentenceEmbeddings:
    return SentenceEmbeddings(batch_size=16, precision="fp32").fit(TRAIN)


def test_embeddings_paraphrases_are_closer_than_unrelated_text(fitted: dict) -> None:
    vecs = fitted["embeddings"].transform(
        frame(
            [
                "My new card still has not arrived",
                "I am still waiting for my card to be delivered",
                "How do I change the language of the mobile app?",
            ]
        )
    )
    assert float(vecs[0] @ vecs[1]) > float(vecs[0] @ vecs[2]) + 0.1


def test_embeddings_are_unit_norm(fitted: dict) -> None:
    vecs = fitted["embeddings"].transform(frame(EDGE_TEXTS))
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_bf16_embeddings_match_fp32(fitted: dict, fp32_embeddings: SentenceEmbeddings) -> None:
    bf16 = fitted["embeddings"].transform(TRAIN)
    fp32 = fp32_embeddings.transform(TRAIN)
    assert not np.array_equal(bf16, fp32)  # the cast really happened
    cosine = (bf16 * fp32).sum(axis=1)
    assert cosine.min() >= 0.9999


def test_embeddings_max_seq_length_cuts_text() -> None:
    short = SentenceEmbeddings(max_seq_length=8, precision="fp32")
    head = "my card has not arrived yet and i am worried"
    vecs = short.transform(frame([f"{head} about billing", f"{head} about shipping"]))
    np.testing.assert_array_equal(vecs[0], vecs[1])


def test_embeddings_reject_unknown_precision() -> None:
    with pytest.raises(EmbeddingsConfigError, match="precision"):
        SentenceEmbeddings(precision="fp16").fit(TRAIN)


# ---------------------------------------------------------------- entities


def test_entities_counts_org_money_place_and_date(fitted: dict) -> None:
    est = fitted["entities"]
    names = list(est.get_feature_names_out())
    row = est.transform(frame(["Apple charged me $40 in London on Monday"]))[0]
    for label in ("ORG", "MONEY", "GPE", "DATE"):
        assert row[names.index(f"entities__{label}")] > 0, label
    assert row[names.index("entities__PERSON")] == 0


def test_entities_pos_shares_sum_to_one_and_empty_text_is_zero(fitted: dict) -> None:
    est = fitted["entities"]
    names = list(est.get_feature_names_out())
    pos_cols = [names.index(f"entities__pos_{tag}") for tag in UPOS_TAGS]
    out = est.transform(frame(["The app crashes when I open settings.", ""]))
    assert out[0, pos_cols].sum() == pytest.approx(1.0, abs=1e-5)
    assert out[0, names.index("entities__pos_NOUN")] > 0
    assert out[0, names.index("entities__n_tokens")] == 8
    assert not out[1].any()


def test_entities_truncate_long_text_to_max_chars(fitted: dict) -> None:
    est = fitted["entities"]
    out = est.transform(frame([LONG_TEXT, LONG_TEXT[: est.max_chars]]))
    np.testing.assert_array_equal(out[0], out[1])


# ---------------------------------------------------------------- topics


def test_topic_proportions_sum_to_one_and_densities_are_shares(fitted: dict) -> None:
    est = fitted["topics"]
    out = est.transform(frame([*TRAIN_TEXTS[:4], *EDGE_TEXTS]))
    props, density = out[:, : est.n_topics], out[:, est.n_topics :]
    np.testing.assert_allclose(props.sum(axis=1), 1.0, atol=1e-5)
    assert ((density >= 0) & (density <= 1)).all()
    assert not density[len(TRAIN_TEXTS[:4])].any()  # the empty text


def test_topic_density_is_one_for_text_made_of_its_keywords(fitted: dict) -> None:
    est = fitted["topics"]
    names = list(est.get_feature_names_out())
    for topic, words in enumerate(est.top_words()):
        row = est.transform(frame([" ".join(words)]))[0]
        assert row[names.index(f"topics__density_{topic}")] == pytest.approx(1.0)


def test_topics_reject_stop_word_only_corpus() -> None:
    with pytest.raises(TopicFitError, match="stop words"):
        TopicFeatures(n_topics=2).fit(frame(["", "the and of"]))
