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
    EncoderHeadMember,
    LightGBMMember,
    LogRegMember,
    RandomForestMember,
    XGBoostMember,
    build_members,
)
from ticket_triage.models.members.base import MemberBase

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
    member = EncoderHeadMember("category") if name == "bert" else TABULAR[name]()
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


# -- the encoder head member ----------------------------------------------------------------------


def _with_heads(features: FeatureSet, probs: np.ndarray) -> FeatureSet:
    return FeatureSet(
        texts=features.texts,
        dense=features.dense,
        dense_names=features.dense_names,
        sparse=features.sparse,
        sparse_names=features.sparse_names,
        blocks=features.blocks,
        heads={"category": probs},
    )


def test_encoder_head_member_returns_the_heads_scores_for_its_target(data) -> None:
    train, y_train, test, _ = data
    rng = np.random.default_rng(SEED)
    train_probs = rng.dirichlet(np.ones(N_CLASSES), size=len(train))
    test_probs = rng.dirichlet(np.ones(N_CLASSES), size=len(test))
    member = EncoderHeadMember("category").fit(_with_heads(train, train_probs), y_train, N_CLASSES)
    np.testing.assert_allclose(member.predict_proba(_with_heads(test, test_probs)), test_probs, atol=1e-12)
    # a subset keeps each row's own scores
    order = np.arange(len(test))[::-1]
    np.testing.assert_allclose(
        member.predict_proba(_with_heads(test, test_probs).subset(order)), test_probs[order], atol=1e-12
    )


def test_encoder_head_member_without_scores_says_how_to_get_them(data) -> None:
    train, y_train, _, _ = data
    with pytest.raises(MemberTrainingError, match="fine_tune = true"):
        EncoderHeadMember("priority").fit(train, y_train, N_CLASSES)


# -- factory ----------------------------------------------------------------------------------------


def _factory(**overrides) -> dict[str, Member]:
    params = {
        "target": "category",
        "xgboost_rounds": 10,
        "lightgbm_rounds": 10,
        "forest_trees": 10,
        "threads": 1,
        "seed": SEED,
        "class_weight_power": 0.5,
    }
    params.update(overrides)
    return build_members(**params)


def test_build_members_matches_the_weight_names_and_passes_parameters() -> None:
    members = _factory(forest_trees=17, seed=99, target="priority")
    assert set(members) == set(DEFAULT_WEIGHTS)
    assert all(member.name == key for key, member in members.items())
    assert members["random_forest"].trees == 17
    assert {m.seed for k, m in members.items() if k != "bert"} == {99}
    assert {m.class_weight_power for k, m in members.items() if k != "bert"} == {0.5}
    assert members["bert"].target == "priority"


def test_build_members_without_a_tuned_encoder_leaves_out_the_head() -> None:
    assert set(_factory(with_encoder_head=False)) == set(DEFAULT_WEIGHTS) - {"bert"}


def test_unfitted_copy_keeps_parameters_and_applies_overrides(data) -> None:
    from ticket_triage.models.base import unfitted_copy

    train, y_train, test, y_test = data
    fitted = XGBoostMember(rounds=40, threads=1, seed=SEED, max_depth=3).fit(
        train, y_train, N_CLASSES, eval_set=(test, y_test)
    )
    copy = unfitted_copy(fitted, rounds=7)
    assert isinstance(copy, XGBoostMember) and copy is not fitted
    assert (copy.rounds, copy.max_depth, copy.seed) == (7, 3, SEED)
    with pytest.raises(NotFittedError):
        copy.predict_proba(test)


@pytest.mark.parametrize("name", sorted(TABULAR))
def test_class_weights_lift_a_rare_class(name: str, data) -> None:
    """With a class cut to a few rows, weighting it raises its predicted share on held-out rows."""
    train, y_train, test, _ = data
    rare = np.flatnonzero(y_train == 2)[:12]
    keep = np.sort(np.concatenate([np.flatnonzero(y_train != 2), rare]))
    sub, y_sub = train.subset(keep), y_train[keep]
    plain = TABULAR[name]().fit(sub, y_sub, N_CLASSES).predict_proba(test)[:, 2].mean()
    member = TABULAR[name]()
    member.class_weight_power = 1.0
    weighted = member.fit(sub, y_sub, N_CLASSES).predict_proba(test)[:, 2].mean()
    assert weighted > plain


# -- the shared base --------------------------------------------------------------------------------


class _Prior(MemberBase):
    """A member written against the base: it only learns class frequencies and scores with them."""

    def __init__(self, name: str = "prior", extra_rows: int = 0) -> None:
        self.name = name
        self.extra_rows = extra_rows
        self.counts_: np.ndarray | None = None

    def _fit(self, features, labels, n_classes, eval_set) -> None:
        self.counts_ = np.bincount(labels, minlength=n_classes).astype(float)

    def _scores(self, features: FeatureSet) -> np.ndarray:
        assert self.counts_ is not None
        return np.tile(self.counts_, (len(features) + self.extra_rows, 1))


def test_every_member_shares_the_base_and_only_xgboost_leaves_the_gil() -> None:
    members = _factory()
    assert all(isinstance(m, MemberBase) and isinstance(m, Member) for m in members.values())
    assert {name for name, m in members.items() if m.runs_without_gil} == {"xgboost"}


def test_a_member_on_the_base_gets_its_checks_and_probability_rows(data) -> None:
    train, y_train, test, y_test = data
    with pytest.raises(NotFittedError, match="'prior' is not fitted"):
        _Prior().predict_proba(test)
    keep = np.flatnonzero(y_train != 1)
    with pytest.raises(MemberTrainingError, match=r"'prior'.*class indices \[1\]"):
        _Prior().fit(train.subset(keep), y_train[keep], N_CLASSES)
    with pytest.raises(ValueError, match="'prior': eval_set labels"):
        _Prior().fit(train, y_train, N_CLASSES, eval_set=(test, y_test + N_CLASSES))
    member = _Prior().fit(train, y_train, N_CLASSES)
    probs = member.predict_proba(test)
    np.testing.assert_allclose(probs[0], np.bincount(y_train) / len(y_train), atol=1e-12)
    assert probs.shape == (len(test), N_CLASSES) and probs.dtype == np.float64
    assert member.predict_proba(test.subset(np.arange(0))).shape == (0, N_CLASSES)


def test_a_member_giving_the_wrong_number_of_rows_is_refused(data) -> None:
    train, y_train, test, _ = data
    member = _Prior(extra_rows=1).fit(train, y_train, N_CLASSES)
    with pytest.raises(RuntimeError, match=rf"'prior' gave {len(test) + 1} probability rows for {len(test)}"):
        member.predict_proba(test)
