"""Each member on small synthetic feature sets: valid probabilities, learning, determinism, pickling."""

from __future__ import annotations

import io
from collections.abc import Callable

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import TfidfVectorizer

from ticket_triage.config import DEFAULT_WEIGHTS
from ticket_triage.features.base import FeatureSet
from ticket_triage.models.base import Member, MemberTrainingError
from ticket_triage.models.members import (
    BertMember,
    LightGBMMember,
    LogRegMember,
    RandomForestMember,
    XGBoostMember,
    build_members,
)

N_CLASSES = 3
SEED = 7

# Small but real settings, so every test trains a genuine model in about a second.
TABULAR: dict[str, Callable[[], Member]] = {
    "xgboost": lambda: XGBoostMember(rounds=40, threads=1, seed=SEED, early_stopping_rounds=5),
    "lightgbm": lambda: LightGBMMember(rounds=40, threads=1, seed=SEED, early_stopping_rounds=5),
    "random_forest": lambda: RandomForestMember(trees=40, threads=1, seed=SEED),
    "logreg": lambda: LogRegMember(C=1.0, threads=1, seed=SEED),
}

WORDS = {
    0: ["card", "lost", "stolen", "block", "replace"],
    1: ["refund", "charge", "payment", "twice", "money"],
    2: ["password", "login", "locked", "reset", "account"],
}
FILLER = ["please", "help", "my", "the", "today", "urgent", "hi", "thanks"]


def _texts(y: np.ndarray, rng: np.random.Generator) -> list[str]:
    return [
        " ".join(rng.choice(WORDS[int(label)], size=2).tolist() + rng.choice(FILLER, size=3).tolist())
        for label in y
    ]


@pytest.fixture(scope="module")
def data() -> tuple[FeatureSet, np.ndarray, FeatureSet, np.ndarray]:
    """Train/test feature sets where both the dense and the TF-IDF view carry the label."""
    X, y = make_classification(
        n_samples=480,
        n_features=12,
        n_informative=6,
        n_classes=N_CLASSES,
        n_clusters_per_class=1,
        class_sep=1.2,
        random_state=SEED,
    )
    rng = np.random.default_rng(SEED)
    texts = _texts(y, rng)
    tfidf = TfidfVectorizer().fit(texts[:360])
    full = FeatureSet(
        texts=texts,
        dense=X,
        dense_names=[f"f{i}" for i in range(X.shape[1])],
        sparse=sp.csr_matrix(tfidf.transform(texts)),
    )
    train, test = np.arange(360), np.arange(360, 480)
    return full.subset(train), y[train], full.subset(test), y[test]


def _roundtrip(member: Member) -> Member:
    buffer = io.BytesIO()
    joblib.dump(member, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


@pytest.mark.parametrize("name", sorted(TABULAR))
def test_member_gives_probability_rows_and_beats_chance(name: str, data) -> None:
    train, y_train, test, y_test = data
    member = TABULAR[name]().fit(train, y_train, N_CLASSES, eval_set=(test, y_test))
    probs = member.predict_proba(test)
    assert probs.shape == (len(test), N_CLASSES)
    assert probs.dtype == np.float64
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert np.mean(probs.argmax(axis=1) == y_test) > 0.7  # chance is 1/3


@pytest.mark.parametrize("name", sorted(TABULAR))
def test_member_is_deterministic_for_a_seed(name: str, data) -> None:
    train, y_train, test, y_test = data
    first = TABULAR[name]().fit(train, y_train, N_CLASSES, eval_set=(test, y_test)).predict_proba(test)
    second = TABULAR[name]().fit(train, y_train, N_CLASSES, eval_set=(test, y_test)).predict_proba(test)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", sorted(TABULAR))
def test_member_survives_a_pickle_round_trip(name: str, data) -> None:
    train, y_train, test, _ = data
    member = TABULAR[name]().fit(train, y_train, N_CLASSES)
    np.testing.assert_array_equal(_roundtrip(member).predict_proba(test), member.predict_proba(test))


@pytest.mark.parametrize("name", [*sorted(TABULAR), "bert"])
def test_class_missing_from_training_names_the_member(name: str, data) -> None:
    train, y_train, _, _ = data
    member = BertMember(epochs=1, seed=SEED) if name == "bert" else TABULAR[name]()
    keep = np.flatnonzero(y_train != 2)
    with pytest.raises(MemberTrainingError, match=rf"'{member.name}'.*class indices \[2\]"):
        member.fit(train.subset(keep), y_train[keep], N_CLASSES)


@pytest.mark.parametrize("name", sorted(TABULAR))
def test_member_rejects_labels_that_do_not_match_the_rows(name: str, data) -> None:
    train, y_train, _, _ = data
    with pytest.raises(ValueError, match="rows"):
        TABULAR[name]().fit(train, y_train[:-1], N_CLASSES)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        TABULAR[name]().fit(train, np.where(y_train == 2, 5, y_train), N_CLASSES)


@pytest.mark.parametrize("name", sorted(TABULAR))
def test_unfitted_member_refuses_to_predict(name: str, data) -> None:
    _, _, test, _ = data
    with pytest.raises(NotFittedError, match=name):
        TABULAR[name]().predict_proba(test)


@pytest.mark.parametrize("member_cls", [XGBoostMember, LightGBMMember])
def test_boosting_stops_early_on_an_uninformative_eval_set(member_cls, data) -> None:
    train, y_train, test, _ = data
    noise = np.random.default_rng(SEED).integers(0, N_CLASSES, size=len(test))
    member = member_cls(rounds=200, threads=1, seed=SEED, early_stopping_rounds=5)
    member.fit(train, y_train, N_CLASSES, eval_set=(test, noise))
    assert member.n_rounds_ < 50


def test_logreg_uses_the_tfidf_view(data) -> None:
    """With the dense block switched off, only the TF-IDF words can carry the label."""
    train, y_train, test, y_test = data
    member = LogRegMember(C=1.0, dense_scale=0.0, threads=1).fit(train, y_train, N_CLASSES)
    assert np.mean(member.predict_proba(test).argmax(axis=1) == y_test) > 0.9


def test_logreg_needs_some_columns(data) -> None:
    train, y_train, _, _ = data
    empty = FeatureSet(texts=train.texts, dense=np.zeros((len(train), 0)), dense_names=[], sparse=None)
    with pytest.raises(MemberTrainingError, match="logreg"):
        LogRegMember().fit(empty, y_train, N_CLASSES)


def test_logreg_refuses_prediction_without_the_tfidf_it_was_trained_on(data) -> None:
    train, y_train, test, _ = data
    member = LogRegMember(threads=1).fit(train, y_train, N_CLASSES)
    stripped = FeatureSet(texts=test.texts, dense=test.dense, dense_names=test.dense_names, sparse=None)
    with pytest.raises(ValueError, match="TF-IDF"):
        member.predict_proba(stripped)


# -- BERT -------------------------------------------------------------------------------------------

INTENTS = {
    0: ["my card has not arrived yet", "where is my new card", "the card still has not come in the post"],
    1: ["I want my money back", "please refund this purchase", "how do I get a refund for this"],
    2: ["I forgot my password", "cannot log in to the app", "how can I reset my login password"],
}
HELD_OUT = {
    0: ["when will my card be delivered", "still waiting for the card to arrive"],
    1: ["can I have a refund please", "return my money for this order"],
    2: ["reset password for my login", "I can not log in, forgot the password"],
}
PREFIXES = ["", "hello, ", "hi there, ", "excuse me, ", "quick question: ", "help! ", "good morning, "]
SUFFIXES = ["", " please", " thanks", " asap", " today", " thank you", "?", "!", " :("]


def _text_set(
    phrases: dict[int, list[str]], per_phrase: int, rng: np.random.Generator
) -> tuple[FeatureSet, np.ndarray]:
    texts, labels = [], []
    for label, options in phrases.items():
        for phrase in options:
            for _ in range(per_phrase):
                texts.append(f"{rng.choice(PREFIXES)}{phrase}{rng.choice(SUFFIXES)}")
                labels.append(label)
    return FeatureSet(texts=texts, dense=np.zeros((len(texts), 0)), dense_names=[]), np.array(labels)


def _bert(**overrides) -> BertMember:
    params = {
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 1e-4,
        "max_length": 32,
        "threads": 1,
        "seed": SEED,
    }
    params.update(overrides)
    return BertMember(progress=False, **params)


@pytest.fixture(scope="module")
def bert_data() -> tuple[FeatureSet, np.ndarray, FeatureSet, np.ndarray]:
    rng = np.random.default_rng(SEED)
    train, y_train = _text_set(INTENTS, 22, rng)  # 198 texts
    test, y_test = _text_set(HELD_OUT, 4, rng)
    return train, y_train, test, y_test


@pytest.fixture(scope="module")
def fitted_bert(bert_data) -> BertMember:
    train, y_train, test, y_test = bert_data
    return _bert().fit(train, y_train, N_CLASSES, eval_set=(test, y_test))


def test_bert_learns_intents_that_generalise_to_paraphrases(fitted_bert, bert_data) -> None:
    _, _, test, y_test = bert_data
    probs = fitted_bert.predict_proba(test)
    assert probs.shape == (len(test), N_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert np.mean(probs.argmax(axis=1) == y_test) > 0.6  # chance is 1/3
    assert len(fitted_bert.eval_accuracy_) == 2
    assert fitted_bert.best_epoch_ == 1 + int(np.argmax(fitted_bert.eval_accuracy_))
    # The kept weights are the best epoch's: their accuracy on the eval split is the best one logged.
    assert np.mean(probs.argmax(axis=1) == y_test) == pytest.approx(max(fitted_bert.eval_accuracy_))


def test_bert_returns_rows_in_input_order(fitted_bert, bert_data) -> None:
    """Prediction sorts by length internally; the caller must still get row i for text i."""
    _, _, test, _ = bert_data
    order = np.arange(len(test))[::-1]
    np.testing.assert_allclose(
        fitted_bert.predict_proba(test.subset(order)), fitted_bert.predict_proba(test)[order], atol=1e-3
    )


def test_bert_survives_a_pickle_round_trip(fitted_bert, bert_data) -> None:
    _, _, test, _ = bert_data
    restored = _roundtrip(fitted_bert)
    np.testing.assert_array_equal(restored.predict_proba(test), fitted_bert.predict_proba(test))


def test_bert_is_deterministic_for_a_seed(bert_data) -> None:
    train, y_train, test, _ = bert_data
    small = train.subset(np.arange(0, len(train), 4))
    runs = [_bert(epochs=1).fit(small, y_train[::4], N_CLASSES).predict_proba(test) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"epochs": 0}, "epochs"), ({"precision": "fp16"}, "precision"), ({"max_length": 4}, "max_length")],
)
def test_bert_rejects_bad_settings(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _bert(**overrides)


# -- factory ----------------------------------------------------------------------------------------


def _factory(**overrides) -> dict[str, Member]:
    params = {
        "xgboost_rounds": 10,
        "lightgbm_rounds": 10,
        "forest_trees": 10,
        "threads": 1,
        "seed": SEED,
        "bert_epochs": 1,
        "bert_batch_size": 8,
        "bert_learning_rate": 5e-5,
        "bert_max_length": 32,
        "bert_precision": "fp32",
    }
    params.update(overrides)
    return build_members(**params)


def test_build_members_matches_the_weight_names_and_passes_parameters() -> None:
    members = _factory(forest_trees=17, seed=99)
    assert set(members) == set(DEFAULT_WEIGHTS)
    assert all(member.name == key for key, member in members.items())
    assert members["random_forest"].trees == 17
    assert {m.seed for m in members.values()} == {99}
    assert members["bert"].precision == "fp32"


def test_build_members_rejects_an_untrained_bert() -> None:
    with pytest.raises(ValueError, match="epochs"):
        _factory(bert_epochs=0)
