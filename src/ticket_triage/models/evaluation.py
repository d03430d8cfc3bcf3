"""Scores a trained bundle's targets (members, ensembles, baseline) and writes the evaluation report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ticket_triage.data.schema import LABEL, PRIORITY
from ticket_triage.features.base import FeatureSet
from ticket_triage.models.bundle import EVALUATION_DIR, Bundle
from ticket_triage.models.conformal import DEFAULT_ALPHA
from ticket_triage.models.out_of_fold import FoldCopies
from ticket_triage.models.report import (
    BASELINE,
    CALIBRATED_ENSEMBLE,
    LEARNED_ENSEMBLE,
    SEED_ENSEMBLE,
    EvaluationReport,
    SystemResult,
    TargetResults,
    summary_lines,
)
from ticket_triage.models.tags import has_tags, tag_sets, tags_summary
from ticket_triage.models.target import Target, TargetModel
from ticket_triage.models.training import TrainResult, encode_labels

#: Which frame column holds the truth for each target.
TARGET_COLUMNS = {Target.CATEGORY: LABEL, Target.PRIORITY: PRIORITY}


def score_target(
    target: TargetModel,
    features: FeatureSet,
    y: np.ndarray,
    timings: dict[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> TargetResults:
    """Every member, the ensemble under seed, learned and live weights (calibrated), and the baseline;
    with the conformal sets at ``alpha`` where the target has a calibration for them."""
    probas: dict[str, np.ndarray] = {}
    costs: dict[str, float] = {}
    stand_ins: list[str] = []
    for name, member in target.ensemble.members.items():
        start = time.perf_counter()
        probas[name] = member.predict_proba(features)
        # A stand-in runs each fold copy; one full member would cost what one copy costs.
        runs = len(member.copies) if isinstance(member, FoldCopies) and member.copies else 1
        if isinstance(member, FoldCopies):
            stand_ins.append(name)
        costs[name] = round(1e6 * (time.perf_counter() - start) / max(1, len(features)) / runs, 1)
    systems = [SystemResult(name, probs=p) for name, p in probas.items()]
    systems.append(SystemResult(SEED_ENSEMBLE, probs=target.ensemble.combine(probas, target.seed_weights)))
    learned = target.learned_weights or target.seed_weights
    systems.append(SystemResult(LEARNED_ENSEMBLE, probs=target.ensemble.combine(probas, learned)))
    calibrated = target.calibrator.transform(target.ensemble.combine(probas))
    systems.append(SystemResult(CALIBRATED_ENSEMBLE, probs=calibrated))
    if target.baseline is not None:
        systems.append(SystemResult(BASELINE, predictions=target.baseline.predict(features.texts)))
    live_is_learned = target.ensemble.weights == learned and target.learned_weights is not None
    return TargetResults(
        name=target.name,
        labels=target.labels,
        y_true=y,
        systems=systems,
        seed_weights=target.seed_weights,
        learned_weights=learned,
        temperature=float(target.calibrator.temperature),
        timings=timings or {},
        member_costs=costs,
        fold_stand_ins=stand_ins,
        live_weights=dict(target.ensemble.weights),
        uncalibrated=LEARNED_ENSEMBLE if live_is_learned else SEED_ENSEMBLE,
        prediction_sets=target.prediction_sets(calibrated, alpha),
        alpha=alpha,
    )


def write_training_report(result: TrainResult, threshold: float, alpha: float = DEFAULT_ALPHA) -> list[str]:
    """Report of a training run on its held-out split, written into the bundle; returns summary lines."""
    targets = []
    dataset: dict[str, Any] = {
        "rows": {
            "train": len(result.splits.train),
            "validation": len(result.splits.validation),
            "test": len(result.splits.test),
        },
        "feature_seconds": result.feature_seconds,
        "total_training_seconds": result.total_seconds,
    }
    for name, tr in result.targets.items():
        timings = {**{f"member {k}": v for k, v in tr.member_seconds.items()}}
        targets.append(score_target(tr.model, tr.eval_features, tr.y_eval, timings, alpha))
        dataset[f"{name}_evaluated_on"] = tr.evaluated_on
        if tr.dropped_classes:
            dataset[f"{name}_classes_dropped_too_few_rows"] = tr.dropped_classes
    tags = None
    if result.tags is not None:
        t = result.tags
        tags = {"evaluated_on": t.evaluated_on, **tags_summary(t.model, t.eval_features, t.eval_sets)}
    report = EvaluationReport(dataset=dataset, targets=targets, threshold=threshold, tags=tags)
    report.write(result.path / EVALUATION_DIR)
    lines = [
        f"evaluated on the held-out {result.targets[Target.CATEGORY].evaluated_on} split "
        f"({len(result.targets[Target.CATEGORY].y_eval)} rows); training took {result.total_seconds:.0f} s"
    ]
    return lines + summary_lines(report.to_dict())


def evaluate_bundle(bundle: Bundle, frame: pd.DataFrame, out_dir: Path) -> list[str]:
    """Report on labelled data the bundle has not seen; rows whose label it never learned are counted out."""
    start = time.perf_counter()
    features = bundle.pipeline.transform(frame)
    dataset: dict[str, Any] = {
        "rows": len(frame),
        "model": bundle.version,
        "feature_seconds": round(time.perf_counter() - start, 1),
    }
    targets = []
    for name, target in bundle.targets.items():
        column = TARGET_COLUMNS[name]
        if column not in frame.columns:
            continue
        codes, known = encode_labels(frame[column], target.labels)
        unseen = frame.loc[~known & frame[column].notna().to_numpy(), column]
        if len(unseen):
            dataset[f"{name}_rows_with_unlearned_labels"] = len(unseen)
        rows = np.flatnonzero(known)
        targets.append(score_target(target, features.subset(rows), codes[known], alpha=bundle.routing.alpha))
    tags = None
    if bundle.tags is not None and has_tags(frame):
        tags = tags_summary(bundle.tags, features, tag_sets(frame))
    report = EvaluationReport(dataset=dataset, targets=targets, threshold=bundle.threshold, tags=tags)
    report.write(out_dir)
    return summary_lines(report.to_dict())
