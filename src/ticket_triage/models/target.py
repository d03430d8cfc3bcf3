"""One prediction target (category or priority): its labels, ensemble and calibrator together."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from ticket_triage.features.base import FeatureSet
from ticket_triage.models.calibration import TemperatureScaler
from ticket_triage.models.conformal import MondrianConformal
from ticket_triage.models.ensemble import WeightedEnsemble


class Target(StrEnum):
    """What a bundle predicts. A StrEnum, so bundles that stored the plain strings still compare equal."""

    CATEGORY = "category"
    PRIORITY = "priority"


@dataclass
class TargetModel:
    """Calibrated probabilities for one target; the label order is the column order."""

    name: str
    labels: list[str]
    ensemble: WeightedEnsemble
    calibrator: TemperatureScaler
    seed_weights: dict[str, float] = field(default_factory=dict)
    learned_weights: dict[str, float] | None = None
    #: TF-IDF + LinearSVC trained on the same split, kept only so evaluations can compare against it.
    baseline: Any = None
    #: Conformal calibration of the calibrated probabilities; None in bundles from before it existed.
    conformal: MondrianConformal | None = None

    def predict_proba(self, features: FeatureSet, helper: Executor | None = None) -> np.ndarray:
        """``helper``: a thread the ensemble may run its GIL-free members on (serving passes one)."""
        return self.calibrator.transform(self.ensemble.predict_proba(features, helper))

    def prediction_sets(self, probs: np.ndarray, alpha: float) -> np.ndarray | None:
        """Boolean (n, labels) conformal sets for calibrated ``probs``; None without a calibration."""
        return None if self.conformal is None else self.conformal.sets(probs, alpha)
