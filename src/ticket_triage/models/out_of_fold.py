"""Out-of-fold predictions: each training row scored by a copy of each member that never saw it.

The fold copies are kept. A member whose learned weight is 0 is not refitted on all rows (that refit cost
four minutes of a full BANKING77 run and changes no answer); the average of its fold copies stands in for
it wherever every member is scored (the report, the seed-weight comparison).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ticket_triage.data.splits import stratified_folds
from ticket_triage.features.base import FeatureSet
from ticket_triage.models.base import Member, unfitted_copy
from ticket_triage.models.members import EncoderHeadMember


@dataclass
class FoldCopy:
    """A member fitted on one fold; ``classes`` maps its columns back when the fold lacked a class."""

    member: Member
    classes: np.ndarray | None = None

    def predict_proba(self, features: FeatureSet, n_classes: int) -> np.ndarray:
        probs = self.member.predict_proba(features)
        if self.classes is None:
            return probs
        out = np.zeros((len(features), n_classes))
        out[:, self.classes] = probs
        return out


@dataclass
class FoldCopies:
    """A member's fold copies averaged: a stand-in for a member that was not refitted on all rows."""

    name: str
    n_classes: int
    copies: list[FoldCopy] = field(default_factory=list)

    def fit(
        self,
        features: FeatureSet,
        y: np.ndarray,
        n_classes: int,
        eval_set: tuple[FeatureSet, np.ndarray] | None = None,
    ) -> FoldCopies:
        raise TypeError(f"member {self.name!r} is made of fold copies; refit the original member instead")

    def predict_proba(self, features: FeatureSet) -> np.ndarray:
        if not self.copies:
            return np.full((len(features), self.n_classes), 1.0 / self.n_classes)
        return np.mean([c.predict_proba(features, self.n_classes) for c in self.copies], axis=0)


def _remap(y: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    remap = np.full(n_classes, -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    return remap[y]


def fit_fold(
    member: Member,
    features: FeatureSet,
    y: np.ndarray,
    n_classes: int,
    eval_set: tuple[FeatureSet, np.ndarray] | None = None,
) -> FoldCopy:
    """Fit ``member`` on a fold that may lack a rare class (the copy restores the missing columns)."""
    present = np.unique(y)
    if len(present) == n_classes:
        return FoldCopy(member.fit(features, y, n_classes, eval_set=eval_set))
    fold_eval = None
    if eval_set is not None:
        eval_features, eval_y = eval_set
        keep = np.flatnonzero(np.isin(eval_y, present))
        if len(keep):
            fold_eval = (eval_features.subset(keep), _remap(eval_y[keep], present, n_classes))
    member.fit(features, _remap(y, present, n_classes), len(present), eval_set=fold_eval)
    return FoldCopy(member, present)


@dataclass
class OutOfFold:
    """Per member: probabilities for every training row, the seconds the refits took, the fold copies."""

    probas: dict[str, np.ndarray]
    seconds: dict[str, float]
    copies: dict[str, FoldCopies]


def out_of_fold_probas(
    members: dict[str, Member],
    features: FeatureSet,
    y: np.ndarray,
    n_classes: int,
    folds: int,
    seed: int,
    eval_set: tuple[FeatureSet, np.ndarray] | None = None,
) -> OutOfFold:
    """Each member's probabilities for every training row from a copy that never saw that row.

    The encoder head's training-row scores are cross-fitted already (features/embeddings.py), so it is
    only asked for them. The others are fitted per fold from unfitted copies; boosters stop early on
    ``eval_set`` (validation rows, never training rows).
    """
    splits = stratified_folds(y, folds, seed)
    result = OutOfFold({}, {}, {})
    for name, member in members.items():
        start = time.perf_counter()
        if isinstance(member, EncoderHeadMember):
            result.probas[name] = unfitted_copy(member).fit(features, y, n_classes).predict_proba(features)
            continue
        out = np.zeros((len(y), n_classes))
        copies = FoldCopies(name, n_classes)
        for fit_rows, out_rows in splits:
            if len(np.unique(y[fit_rows])) < 2:
                out[out_rows] = 1.0 / n_classes
                continue
            fold_features = features.subset(fit_rows)
            copy = fit_fold(unfitted_copy(member), fold_features, y[fit_rows], n_classes, eval_set)
            copies.copies.append(copy)
            out[out_rows] = copy.predict_proba(features.subset(out_rows), n_classes)
        result.probas[name] = out
        result.copies[name] = copies
        result.seconds[name] = round(time.perf_counter() - start, 1)
    return result
