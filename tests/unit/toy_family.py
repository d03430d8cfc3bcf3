"""A feature family living outside the package, declared in this one module: marker counts per ticket.

Importing the module registers the family; tests/unit/test_toy_family.py shows that the pipeline then
computes it, its features.toml section configures it and drift monitoring watches the column it names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.base import BaseEstimator, TransformerMixin

from ticket_triage.features.base import texts_of
from ticket_triage.features.registry import FamilyConfig, FamilySpec, register

FAMILY = "toy"


class ToyFeatures(BaseEstimator, TransformerMixin):
    """How often ``marker`` occurs in the ticket, and how many words it has."""

    def __init__(self, marker: str = "!") -> None:
        self.marker = marker

    def fit(self, X: pd.DataFrame, y: object = None) -> ToyFeatures:
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray([[t.count(self.marker), len(t.split())] for t in texts_of(X)], dtype=np.float32)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray([f"{FAMILY}__marks", f"{FAMILY}__words"], dtype=object)


class ToyConfig(FamilyConfig):
    """The [toy] section of features.toml."""

    marker: str = Field("!", min_length=1, max_length=1)


SPEC = register(FamilySpec(FAMILY, ToyFeatures, ToyConfig, monitored=r"toy__marks"))
