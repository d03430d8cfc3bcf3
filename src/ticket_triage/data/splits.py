"""Seeded, stratified train/validation/test split that copes with the tiny classes real helpdesks have.

Rule, applied per class (documented here because the lead may revisit it):

1. A class with fewer than ``min_rows_per_class`` rows is left out of every split (the models
   require every class they know to have training rows) and reported in ``Splits.rare``.
2. Every remaining class keeps at least one row for training, whatever the fractions say.
3. Validation, then test, get each class's share ``n_c * fraction`` rounded so the split totals hit
   ``round(n * fraction)``: each class gets the floor, and the leftover rows go to the classes with
   the largest fractional parts (ties broken by the seed), never taking a class's last training row.
   So each class is within one row of its exact share unless rule 2 caps it, and a class too small
   to appear in every split simply has no row in some held-out split (reported in ``Splits.notes``).

scikit-learn's StratifiedShuffleSplit allocates the same way but raises on one-row classes and on
held-out sets smaller than the class count, both of which happen with real ticket data.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ticket_triage.data.schema import CREATED_AT, LABEL, METADATA_COLUMNS, PRIORITY, TEXT

#: Columns whose content identifies a training set, in the order they are hashed.
FINGERPRINT_COLUMNS = (TEXT, LABEL, PRIORITY, *METADATA_COLUMNS, CREATED_AT)


@dataclass(frozen=True)
class Splits:
    """Row positions (into the labels given) of each split, sorted ascending."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    rare: dict[str, int] = field(default_factory=dict)  # class left out of training -> its row count
    notes: tuple[str, ...] = ()  # classes missing from a held-out split

    def rare_report(self) -> list[str]:
        """One line per class left out, for the training report."""
        return [
            f"class {label!r} has {count} row(s), fewer than the minimum: left out of training"
            for label, count in sorted(self.rare.items())
        ]


def split_frame(
    labels: np.ndarray | pd.Series,
    *,
    validation_fraction: float,
    test_fraction: float,
    min_rows_per_class: int,
    seed: int,
) -> Splits:
    """Split row positions 0..n-1 by class; the same labels and seed always give the same splits."""
    if not 0.0 <= validation_fraction < 1.0 or not 0.0 <= test_fraction < 1.0:
        raise ValueError(
            f"fractions must be in [0, 1): validation_fraction={validation_fraction}, "
            f"test_fraction={test_fraction}"
        )
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"validation_fraction + test_fraction must be below 1, got {validation_fraction + test_fraction}"
        )
    if min_rows_per_class < 1:
        raise ValueError(f"min_rows_per_class must be at least 1, got {min_rows_per_class}")
    values = pd.Series(np.asarray(labels, dtype=object))
    if values.isna().any():
        first = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValueError(f"labels must not be missing; position {first} has none")
    values = values.astype(str)

    counts = values.value_counts(sort=False).sort_index()  # sorted so the seed, not input order, decides
    rare = {str(c): int(n) for c, n in counts.items() if n < min_rows_per_class}
    kept = counts[counts >= min_rows_per_class]
    if len(kept) < 2:
        raise ValueError(
            f"only {len(kept)} class(es) have at least {min_rows_per_class} rows; a classifier needs two"
        )

    rng = np.random.default_rng(seed)
    sizes = kept.to_numpy()
    n_val = _allocate(sizes, validation_fraction, capacity=sizes - 1, rng=rng)
    n_test = _allocate(sizes, test_fraction, capacity=sizes - 1 - n_val, rng=rng)

    position = values.to_numpy()
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    notes = []
    for label, v, t in zip(kept.index, n_val, n_test, strict=True):
        members = rng.permutation(np.flatnonzero(position == label))
        parts["validation"].append(members[:v])
        parts["test"].append(members[v : v + t])
        parts["train"].append(members[v + t :])
        absent = [
            name
            for name, n, frac in (("validation", v, validation_fraction), ("test", t, test_fraction))
            if frac > 0 and n == 0
        ]
        if absent:
            notes.append(f"class {label!r} ({len(members)} rows) has no row in {' or '.join(absent)}")

    def joined(name: str) -> np.ndarray:
        return np.sort(np.concatenate(parts[name])).astype(np.int64)

    return Splits(
        train=joined("train"),
        validation=joined("validation"),
        test=joined("test"),
        rare=rare,
        notes=tuple(notes),
    )


def _allocate(
    sizes: np.ndarray, fraction: float, *, capacity: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Rows per class for one held-out split: largest-remainder rounding of ``sizes * fraction``."""
    exact = sizes * fraction
    alloc = np.minimum(np.floor(exact).astype(np.int64), capacity)
    leftover = math.floor(sizes.sum() * fraction + 0.5) - int(alloc.sum())
    # Largest fractional part first; a random key breaks ties reproducibly.
    order = np.lexsort((rng.random(len(sizes)), -(exact - np.floor(exact))))
    for i in order:
        if leftover <= 0:
            break
        if alloc[i] < capacity[i]:
            alloc[i] += 1
            leftover -= 1
    return alloc


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a training frame's content, to tell whether a model was trained on this data.

    Depends on the rows' content and their order (order changes what seeded training produces), and
    on which of ``FINGERPRINT_COLUMNS`` are present; ignores ids and the source file names, so the same
    tickets read from a renamed or converted file give the same fingerprint.
    """
    digest = hashlib.sha256()
    present = [c for c in FINGERPRINT_COLUMNS if c in frame.columns]
    digest.update(json.dumps(present).encode())
    for column in present:
        series = frame[column]
        if column == CREATED_AT:
            cells = [None if pd.isna(v) else pd.Timestamp(v).isoformat() for v in series]
        else:
            cells = [
                None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in series
            ]
        digest.update(json.dumps(cells, ensure_ascii=False).encode())
    return digest.hexdigest()


def stratified_folds(strata: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, held-out rows) per fold, stratified, seeded: the cross-fitting of encoder and members.

    Classes with fewer rows than folds are expected (rare queues): scikit-learn warns, and every row still
    lands in exactly one held-out part.
    """
    import warnings

    from sklearn.model_selection import StratifiedKFold

    n = len(strata)
    splitter = StratifiedKFold(n_splits=min(int(folds), n), shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return list(splitter.split(np.zeros(n), strata))
