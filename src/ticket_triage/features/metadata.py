"""Ticket metadata: channel, customer tier and declared urgency.

Where a ticket came from and who sent it often decide its queue and priority as much as its words:
phone tickets from enterprise customers are escalations more often than web-form questions from
free users, and a declared "P1" is a strong priority prior even when the text is calm. Values never
seen in training are accepted and encoded as unknown, so a new channel can never break prediction.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.validation import check_is_fitted

from ticket_triage.data.schema import METADATA_COLUMNS, URGENCY
from ticket_triage.features.registry import FamilyConfig, FamilySpec, register

FAMILY = "metadata"

# Values that mean "not given" once normalised; they set the <column>_missing flag.
MISSING_TOKENS = frozenset({"", "none", "null", "nan", "na", "n_a", "missing", "unknown", "unset"})

# Declared urgency -> ordinal level in [0, 1], looked up after normalising and dropping "_" and "-",
# so "P 1", "p-1" and "P1" agree. Four steps: low, normal, high, top. Any other value (including
# numbers alone, whose direction differs between helpdesks) counts as unknown and sets
# urgency_level_missing.
URGENCY_LEVELS: dict[str, float] = {
    **dict.fromkeys(("low", "lowest", "minor", "trivial", "verylow", "p4", "p5", "sev4", "sev5"), 0.0),
    **dict.fromkeys(("normal", "medium", "moderate", "standard", "p3", "sev3"), 1.0 / 3.0),
    **dict.fromkeys(("high", "major", "important", "p2", "sev2"), 2.0 / 3.0),
    **dict.fromkeys(
        ("urgent", "critical", "highest", "veryhigh", "blocker", "emergency", "p0", "p1", "sev0", "sev1"),
        1.0,
    ),
}

_NON_WORD = re.compile(r"[^\w]+")


class MetadataFeaturesError(ValueError):
    """Invalid parameters or input frame for MetadataFeatures."""


def normalise(value: object) -> str | None:
    """Lower-case, trim and join words with "_" ("Live Chat " -> "live_chat"); None when not given."""
    if value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value))):
        return None
    text = _NON_WORD.sub("_", str(value).strip().lower()).strip("_")
    return None if text in MISSING_TOKENS else text


def urgency_level(value: str | None) -> float | None:
    """Ordinal urgency of a normalised value, None when missing or not in ``URGENCY_LEVELS``."""
    if value is None:
        return None
    return URGENCY_LEVELS.get(value.replace("_", ""))


# Stands in for a missing value inside the encoder; normalise() never yields it (it keeps only \w).
_PLACEHOLDER = "\x00missing"


def _table(X: pd.DataFrame) -> np.ndarray:
    """Normalised metadata as an (n, 3) object array; None where a value is missing or absent."""
    columns = [
        [normalise(v) for v in X[name].tolist()] if name in X.columns else [None] * len(X)
        for name in METADATA_COLUMNS
    ]
    return np.asarray(columns, dtype=object).T.reshape(len(X), len(METADATA_COLUMNS))


class MetadataFeatures(BaseEstimator, TransformerMixin):
    """One-hot channel/tier/urgency, their missing flags, and an ordinal urgency level.

    Values seen fewer than ``min_frequency`` times in training share one "infrequent" column per
    field (present only when ``min_frequency`` > 1 folds something); values never seen in training
    map to that column when it exists and to all zeros otherwise. One encoder covers all three
    fields so a single-ticket request pays sklearn's input checks once.
    """

    def __init__(self, min_frequency: int = 1) -> None:
        self.min_frequency = min_frequency

    def fit(self, X: pd.DataFrame, y: object = None) -> MetadataFeatures:
        self._check(X)
        if len(X) == 0:
            raise MetadataFeaturesError("MetadataFeatures cannot be fitted on an empty frame")
        table = _table(X)
        table[pd.isna(table)] = _PLACEHOLDER
        self.encoder_ = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            min_frequency=self.min_frequency,
            sparse_output=False,
            dtype=np.float32,
        ).fit(table)
        raw = list(self.encoder_.get_feature_names_out(list(METADATA_COLUMNS)))
        # Output columns kept (the placeholder's own column is dropped) and the field each belongs to.
        self.keep_ = np.array([not n.endswith(f"_{_PLACEHOLDER}") for n in raw], dtype=bool)
        self.field_of_ = np.array(
            [next(j for j, c in enumerate(METADATA_COLUMNS) if n.startswith(f"{c}_")) for n in raw], dtype=int
        )[self.keep_]
        flags = [f"{c}_missing" for c in METADATA_COLUMNS] + [f"{URGENCY}_level", f"{URGENCY}_level_missing"]
        # A value spelled like a flag ("level" in urgency) gets a suffix so names stay unique.
        onehot = [n if n not in flags else f"{n}_value" for n, k in zip(raw, self.keep_, strict=True) if k]
        self.feature_names_out_ = np.asarray([f"{FAMILY}__{n}" for n in onehot + flags], dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, ["encoder_", "feature_names_out_"])
        self._check(X)
        if len(X) == 0:
            return np.zeros((0, len(self.feature_names_out_)), dtype=np.float32)
        table = _table(X)
        missing = pd.isna(table).astype(bool)
        levels = [urgency_level(v) for v in table[:, METADATA_COLUMNS.index(URGENCY)]]
        table[missing] = _PLACEHOLDER
        onehot = self.encoder_.transform(table)[:, self.keep_]
        # A missing value folded into an "infrequent" column must not count as a value there.
        onehot[missing[:, self.field_of_]] = 0.0
        level = np.array([0.0 if lv is None else lv for lv in levels])
        level_missing = np.array([lv is None for lv in levels], dtype=bool)
        return np.column_stack([onehot, missing, level, level_missing]).astype(np.float32)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def _check(self, X: pd.DataFrame) -> None:
        if not isinstance(X, pd.DataFrame):
            raise MetadataFeaturesError(f"MetadataFeatures needs a ticket DataFrame, got {type(X).__name__}")
        value = self.min_frequency
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise MetadataFeaturesError(
                f"MetadataFeatures.min_frequency must be an integer >= 1, got {value!r}"
            )


class MetadataConfig(FamilyConfig):
    """The [metadata] section of features.toml."""

    min_frequency: int = Field(1, ge=1)


SPEC = register(FamilySpec(FAMILY, MetadataFeatures, MetadataConfig))
