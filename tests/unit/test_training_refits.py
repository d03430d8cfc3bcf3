"""Which members training refits on all rows: only those whose weight can move an answer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ticket_triage.config import Settings
from ticket_triage.data.splits import Splits
from ticket_triage.features.base import FeatureSet
from ticket_triage.models.out_of_fold import FoldCopies
from ticket_triage.models.target import Target
from ticket_triage.models.training import train_target

SEED = 7


def _problem(n: int = 240) -> tuple[pd.Series, dict[str, FeatureSet], Splits]:
    rng = np.random.default_rng(SEED)
    y = rng.integers(0, 3, size=n)
    dense = (rng.normal(size=(n, 6)) + 2.0 * y[:, None]).astype(np.float32)
    labels = pd.Series(np.array(["a", "b", "c"])[y])
    index = np.arange(n)
    splits = Splits(train=index[:160], validation=index[160:200], test=index[200:])
    words = np.array(["refund card", "login password", "invoice charge"])
    texts = [f"{words[c]} ticket {i}" for i, c in enumerate(y)]
    full = FeatureSet(texts=texts, dense=dense, dense_names=[f"f{i}" for i in range(6)])
    features = {name: full.subset(getattr(splits, name)) for name in ("train", "validation", "test")}
    return labels, features, splits


def test_a_member_without_weight_is_kept_as_fold_copies_not_refitted() -> None:
    labels, features, splits = _problem()
    weights = {"xgboost": 0.0, "lightgbm": 0.5, "random_forest": 0.0, "logreg": 0.5}
    settings = Settings(weights=weights, xgboost_rounds=20, lightgbm_rounds=20, forest_trees=20, cv_folds=2)
    result = train_target(Target.CATEGORY, labels, ["a", "b", "c"], splits, features, settings, "seed")
    members = result.model.ensemble.members
    assert isinstance(members["xgboost"], FoldCopies) and len(members["xgboost"].copies) == 2
    assert isinstance(members["random_forest"], FoldCopies)
    assert not isinstance(members["logreg"], FoldCopies)
    assert not isinstance(members["lightgbm"], FoldCopies)
    # Only the weighted members were refitted; every member had its out-of-fold fits.
    refits = {k for k in result.member_seconds if "out-of-fold" not in k}
    assert refits == {"lightgbm", "logreg"}
    assert {k.split(" ")[0] for k in result.member_seconds if "out-of-fold" in k} == set(weights)
    # Serving skips the stand-ins; scoring them still gives proper probabilities on this easy problem.
    assert set(result.model.ensemble.active) == {"lightgbm", "logreg"}
    probs = members["random_forest"].predict_proba(result.eval_features)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert np.mean(probs.argmax(axis=1) == result.y_eval) > 0.8


def test_every_member_with_weight_is_refitted_on_all_rows() -> None:
    labels, features, splits = _problem()
    settings = Settings(xgboost_rounds=20, lightgbm_rounds=20, forest_trees=20, cv_folds=2)
    result = train_target(Target.CATEGORY, labels, ["a", "b", "c"], splits, features, settings, "seed")
    assert not any(isinstance(m, FoldCopies) for m in result.model.ensemble.members.values())
