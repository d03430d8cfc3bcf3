"""The flattened forest walk must give scikit-learn's probabilities exactly, or it would move predictions."""

from __future__ import annotations

import pickle

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from ticket_triage.models.members.flat_forest import FlatForest


def _forest(**kwargs: object) -> tuple[RandomForestClassifier, np.ndarray]:
    X, y = make_classification(n_samples=600, n_features=20, n_informative=8, n_classes=5, random_state=0)
    X = X.astype(np.float32)
    forest = RandomForestClassifier(n_estimators=40, random_state=0, **kwargs).fit(X[:500], y[:500])
    return forest, X[500:]


def test_probabilities_equal_scikit_learn_row_by_row_and_in_batches() -> None:
    forest, X = _forest()
    flat = FlatForest(forest)
    np.testing.assert_array_equal(flat.predict_proba(X[:1]), forest.predict_proba(X[:1]))
    np.testing.assert_allclose(flat.predict_proba(X), forest.predict_proba(X), rtol=0, atol=1e-12)


def test_shallow_and_uneven_trees_and_ties_on_thresholds() -> None:
    forest, X = _forest(max_depth=3, min_samples_leaf=20)
    flat = FlatForest(forest)
    # Rows exactly on a split threshold must go left, as in scikit-learn.
    tree = forest.estimators_[0].tree_
    on_threshold = X[:3].copy()
    on_threshold[:, tree.feature[0]] = np.float32(tree.threshold[0])
    np.testing.assert_allclose(
        flat.predict_proba(on_threshold), forest.predict_proba(on_threshold), atol=1e-12
    )
    assert flat.depth == 3


def test_the_member_uses_it_for_small_batches_and_never_pickles_it() -> None:
    from ticket_triage.features.base import FeatureSet
    from ticket_triage.models.members.forest import FLAT_WALK_MAX_ROWS, RandomForestMember

    X, y = make_classification(n_samples=300, n_features=10, n_informative=5, n_classes=3, random_state=1)
    features = FeatureSet(
        texts=[""] * 300, dense=X.astype(np.float32), dense_names=[f"f{i}" for i in range(10)]
    )
    member = RandomForestMember(trees=25, threads=1).fit(features.subset(np.arange(250)), y[:250], 3)
    small = features.subset(np.arange(250, 250 + FLAT_WALK_MAX_ROWS))
    large = features.subset(np.arange(250, 300))
    small_probs = member.predict_proba(small)
    assert member._flat is not None  # built on first small batch
    np.testing.assert_allclose(small_probs, member.predict_proba(large)[:FLAT_WALK_MAX_ROWS], atol=1e-12)
    restored = pickle.loads(pickle.dumps(member))
    assert restored._flat is None
    np.testing.assert_allclose(restored.predict_proba(small), small_probs, atol=1e-12)
