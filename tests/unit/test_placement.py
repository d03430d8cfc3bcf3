"""Where parts of a pass run is declared by the ensemble and the pipeline, not named by serving."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ticket_triage.features.entities import EntityFeatures
from ticket_triage.features.pipeline import FeaturePipeline
from ticket_triage.features.readability import ReadabilityFeatures
from ticket_triage.models.ensemble import WeightedEnsemble
from ticket_triage.models.members import LogRegMember, XGBoostMember


class _Compiled:
    """A member that says it runs without the interpreter lock."""

    runs_without_gil: ClassVar[bool] = True

    def __init__(self, name: str) -> None:
        self.name = name

    def fit(self, *args: Any, **kwargs: Any) -> _Compiled:
        return self

    def predict_proba(self, features: Any) -> np.ndarray:
        return np.full((len(features), 2), 0.5)


class _Encoder:
    produces_heads: ClassVar[bool] = True


class _OwnProcess:
    runs_in_worker_process: ClassVar[bool] = True


def test_helper_thread_members_are_the_active_ones_that_say_so() -> None:
    members = {
        "fast": _Compiled("fast"),
        "idle": _Compiled("idle"),
        "xgb": XGBoostMember(rounds=1, threads=1, seed=0, name="xgb"),
        "lr": LogRegMember(threads=1, seed=0, name="lr"),
    }
    ensemble = WeightedEnsemble(members, {"fast": 0.4, "idle": 0.0, "xgb": 0.3, "lr": 0.3})
    # "idle" has no vote, so it never runs; XGBoost declares that its predict holds no lock.
    assert ensemble.helper_thread_members() == ["fast", "xgb"]


def test_families_are_found_by_what_they_declare() -> None:
    pipeline = FeaturePipeline()
    pipeline.families_ = [
        ("readability", ReadabilityFeatures()),
        ("vectors", _Encoder()),
        ("spacy", EntityFeatures()),
        ("slow", _OwnProcess()),
    ]
    encoder = pipeline.encoder()
    assert encoder is not None and encoder[0] == "vectors"
    assert [name for name, _ in pipeline.worker_process_families()] == ["spacy", "slow"]
    pipeline.families_ = [("readability", ReadabilityFeatures())]
    assert pipeline.encoder() is None and pipeline.worker_process_families() == []


class _Recording(_Compiled):
    """Remembers which thread ran its prediction."""

    def __init__(self, name: str, p: float, gil_free: bool) -> None:
        super().__init__(name)
        self.p, self.thread = p, ""
        self.runs_without_gil = gil_free  # type: ignore[misc]

    def predict_proba(self, features: Any) -> np.ndarray:
        import threading

        self.thread = threading.current_thread().name
        return np.tile([self.p, 1.0 - self.p], (len(features), 1))


def test_the_ensemble_runs_gil_free_members_on_the_helper_and_votes_the_same() -> None:
    from concurrent.futures import ThreadPoolExecutor

    free, held = _Recording("free", 0.9, True), _Recording("held", 0.3, False)
    ensemble = WeightedEnsemble({"free": free, "held": held}, {"free": 0.25, "held": 0.75})
    alone = ensemble.predict_proba([0, 1, 2])
    with ThreadPoolExecutor(1, thread_name_prefix="helper") as helper:
        beside = ensemble.predict_proba([0, 1, 2], helper)
    np.testing.assert_array_equal(alone, beside)
    np.testing.assert_allclose(beside[0], [0.25 * 0.9 + 0.75 * 0.3, 0.25 * 0.1 + 0.75 * 0.7])
    assert free.thread.startswith("helper") and not held.thread.startswith("helper")
