"""Training orchestration: split, compute features once, train both targets, calibrate, report, save.

Weights are learned on out-of-fold predictions over all training rows (each row scored by a copy of each
member that never saw it), not on a small validation slice: with 77 classes a 10 % slice is too few rows
per class to tell members apart, and learned weights there gave the trees 0 and LogReg everything.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ticket_triage.config import Settings
from ticket_triage.data.schema import LABEL, PRIORITY
from ticket_triage.data.splits import Splits, fingerprint, split_frame
from ticket_triage.features.base import FeatureSet
from ticket_triage.features.config import FeatureConfig
from ticket_triage.features.pipeline import FeaturePipeline
from ticket_triage.models.base import Member
from ticket_triage.models.baseline import LinearSvcBaseline
from ticket_triage.models.bundle import LIVE_POINTER, mark_live, save_bundle
from ticket_triage.models.calibration import TemperatureScaler
from ticket_triage.models.conformal import MondrianConformal
from ticket_triage.models.conformal_evaluation import conformal_summary
from ticket_triage.models.ensemble import WeightedEnsemble, optimize_weights
from ticket_triage.models.members import build_members
from ticket_triage.models.out_of_fold import out_of_fold_probas
from ticket_triage.models.tags import (
    MIN_TAG_ROWS,
    TagBaseline,
    TagModel,
    has_tags,
    indicator,
    learnable_tags,
    tag_sets,
)
from ticket_triage.models.target import Target, TargetModel
from ticket_triage.monitoring.reference import build_reference
from ticket_triage.runtime import resolve_precision, usable_cpus

log = logging.getLogger(__name__)

#: "learned": weights fitted on out-of-fold predictions (the default); "seed": the published weights.
WEIGHTINGS = ("learned", "seed")


@dataclass
class TargetResult:
    """What training one target produced: the model and everything the report shows about it."""

    model: TargetModel
    evaluated_on: str
    eval_features: FeatureSet
    y_eval: np.ndarray
    member_seconds: dict[str, float]
    #: Calibrated predicted class per validation row: the reference class mix for prediction drift.
    validation_predictions: np.ndarray
    #: The validation rows that have this target's label, their calibrated top probability (the
    #: reference for confidence drift) and features (the reference sample for drift reports).
    validation_confidence: np.ndarray
    validation_features: FeatureSet
    dropped_classes: dict[str, int] = field(default_factory=dict)


@dataclass
class TagsResult:
    """The tag model and what the report scores it on (test rows, else validation)."""

    model: TagModel
    evaluated_on: str
    eval_sets: list[set[str]]
    eval_features: FeatureSet


@dataclass
class TrainResult:
    path: Path
    pipeline: FeaturePipeline
    targets: dict[str, TargetResult]
    feature_seconds: dict[str, float]
    splits: Splits
    total_seconds: float
    tags: TagsResult | None = None


def train_tags(
    frame: pd.DataFrame, splits: Splits, features: dict[str, FeatureSet], settings: Settings
) -> TagsResult:
    """The tags target (models/tags.py) on the shared features; thresholds tuned on validation."""
    sets = tag_sets(frame)
    tags, rare = learnable_tags([sets[i] for i in splits.train])
    if not tags:
        raise ValueError(f"--tags: no tag has {MIN_TAG_ROWS} training tickets; nothing to learn")
    y = {split: indicator([sets[i] for i in getattr(splits, split)], tags) for split in features}
    threads = settings.threads or usable_cpus()
    model = TagModel(tags=tags, seed=settings.seed, threads=threads, rare=rare)
    validation = (features["validation"], y["validation"]) if "validation" in features else None
    model.fit(features["train"], y["train"], validation)
    model.baseline = TagBaseline(seed=settings.seed).fit(features["train"].texts, y["train"])
    evaluated_on = "test" if "test" in features else "validation"
    return TagsResult(
        model=model,
        evaluated_on=evaluated_on,
        eval_sets=[sets[i] for i in getattr(splits, evaluated_on)],
        eval_features=features[evaluated_on],
    )


def encode_labels(values: pd.Series, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes for values in ``labels`` and the mask of rows that have one."""
    index = {label: i for i, label in enumerate(labels)}
    codes = np.array([index.get(v, -1) if isinstance(v, str) else -1 for v in values], dtype=np.int64)
    return codes, codes >= 0


def target_labels(values: pd.Series) -> list[str]:
    """The classes a target learns: every label present in the training rows, sorted."""
    return sorted(values.dropna().value_counts().index.tolist())


def train_target(
    name: Target,
    values: pd.Series,
    labels: list[str],
    splits: Splits,
    features: dict[str, FeatureSet],
    settings: Settings,
    weighting: str,
) -> TargetResult:
    """Fit the members, learn their weights out of fold, calibrate on validation, evaluate on test."""
    if len(labels) < 2:
        raise ValueError(
            f"target '{name}' has {len(labels)} class(es) in the training split; need at least 2"
        )
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    y = {}
    rows = {}
    for split, index in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
        codes, mask = encode_labels(values.iloc[index], labels)
        y[split], rows[split] = codes[mask], np.flatnonzero(mask)
    fs = {split: features[split].subset(rows[split]) for split in features}
    members = build_members(
        target=name.value,  # what gets pickled holds plain strings, so bundles never depend on the enum
        seed=settings.seed,
        threads=settings.threads or usable_cpus(),
        xgboost_rounds=settings.xgboost_rounds,
        lightgbm_rounds=settings.lightgbm_rounds,
        forest_trees=settings.forest_trees,
        class_weight_power=settings.class_weight_power,
        with_encoder_head=name in fs["train"].heads,
    )
    eval_set = (fs["validation"], y["validation"])
    oof = out_of_fold_probas(
        members, fs["train"], y["train"], len(labels), settings.cv_folds, settings.seed, eval_set
    )
    seconds = {f"{k} (out-of-fold fits)": v for k, v in oof.seconds.items()}
    seed_weights = {k: settings.weights.get(k, 0.0) for k in members}
    learned = optimize_weights(oof.probas, y["train"])
    chosen = learned if weighting == "learned" else seed_weights
    fitted: dict[str, Member] = {}
    for member_name, member in members.items():
        if chosen.get(member_name, 0.0) <= 0 and member_name in oof.copies:
            log.info("%s member %s has no weight: kept as its fold copies, not refitted", name, member_name)
            fitted[member_name] = oof.copies[member_name]
            continue
        log.info("training %s member %s on %d rows", name, member_name, len(y["train"]))
        start = time.perf_counter()
        fitted[member_name] = member.fit(fs["train"], y["train"], len(labels), eval_set=eval_set)
        seconds[member_name] = round(time.perf_counter() - start, 1)
    members = fitted
    ensemble = WeightedEnsemble(members, chosen)
    validation_probas = {k: m.predict_proba(fs["validation"]) for k, m in members.items()}
    validation_mix = ensemble.combine(validation_probas)
    calibrator = TemperatureScaler().fit(validation_mix, y["validation"])
    calibrated = calibrator.transform(validation_mix)
    # Conformal calibration wants many rows per class (19 at alpha 0.05 before a class can ever be left
    # out), more than the validation split has: the out-of-fold scores of the training rows join it.
    # Those come from fold copies fitted on fewer rows, so they err towards larger, safer sets.
    pool = np.vstack([calibrator.transform(ensemble.combine(oof.probas)), calibrated])
    conformal = MondrianConformal.calibrate(pool, np.concatenate([y["train"], y["validation"]]))
    baseline = LinearSvcBaseline(seed=settings.seed).fit(fs["train"].texts, y["train"])
    model = TargetModel(
        name=name.value,
        labels=labels,
        ensemble=ensemble,
        calibrator=calibrator,
        seed_weights=seed_weights,
        learned_weights=learned,
        baseline=baseline,
        conformal=conformal,
    )

    evaluated_on = "test" if len(y["test"]) else "validation"
    dropped = {str(k): int(v) for k, v in values.dropna().value_counts().items() if k not in set(labels)}
    return TargetResult(
        model=model,
        evaluated_on=evaluated_on,
        eval_features=fs[evaluated_on],
        y_eval=y[evaluated_on],
        member_seconds=seconds,
        validation_predictions=calibrated.argmax(axis=1),
        validation_confidence=calibrated.max(axis=1),
        validation_features=fs["validation"],
        dropped_classes=dropped,
    )


def default_routing(result: TargetResult, settings: Settings) -> dict[str, Any]:
    """The conformal summary of the category target on its held-out rows, with the rule to default to."""
    model = result.model
    probs = model.predict_proba(result.eval_features)
    sets = model.prediction_sets(probs, settings.conformal_alpha)
    if sets is None:
        raise RuntimeError(f"target {model.name!r} was trained without a conformal calibration")
    summary = conformal_summary(
        probs, result.y_eval, sets, model.labels, settings.routing_threshold, settings.conformal_alpha
    )
    log.info("routing rule %s: %s", summary["chosen_rule"], summary["reason"])
    return summary


def encoder_tuning(settings: Settings) -> dict[str, Any]:
    """The run's settings the sentence encoder takes when it fine-tunes (see features/embeddings.py)."""
    return {
        "epochs": settings.bert_epochs,
        "train_batch_size": settings.bert_batch_size,
        "learning_rate": settings.bert_learning_rate,
        "class_weight_power": settings.class_weight_power,
        "folds": settings.cv_folds,
        "threads": settings.threads,
    }


def train_bundle(
    frame: pd.DataFrame,
    *,
    settings: Settings,
    feature_config: FeatureConfig,
    out_dir: Path,
    weighting: str = "learned",
    data_info: dict[str, Any],
    mark_live_if_first: bool = True,
) -> TrainResult:
    """Train every target the data has and write a bundle under ``out_dir``.

    With ``mark_live_if_first`` the bundle becomes live when nothing in ``out_dir`` is; a retrained
    challenger passes False, because only ``triage promote`` may make it live.
    """
    started = time.perf_counter()
    splits = split_frame(
        frame[LABEL],
        validation_fraction=settings.validation_fraction,
        test_fraction=settings.test_fraction,
        min_rows_per_class=settings.min_rows_per_class,
        seed=settings.seed,
    )
    if settings.bert_max_length is not None:
        embeddings = feature_config.embeddings.model_copy(update={"max_seq_length": settings.bert_max_length})
        feature_config = feature_config.model_copy(update={"embeddings": embeddings})
    columns = {Target.CATEGORY: frame[LABEL]}
    if PRIORITY in frame.columns and frame[PRIORITY].notna().any():
        columns[Target.PRIORITY] = frame[PRIORITY]
    labels = {name: target_labels(values.iloc[splits.train]) for name, values in columns.items()}
    encoder_targets = {
        name.value: (encode_labels(columns[name].iloc[splits.train], labs)[0], len(labs))
        for name, labs in labels.items()
        if len(labs) >= 2
    }
    pipeline = FeaturePipeline(feature_config, random_state=settings.seed, tuning=encoder_tuning(settings))
    features = {"train": pipeline.fit_transform(frame.iloc[splits.train], targets=encoder_targets)}
    for split in ("validation", "test"):
        index = getattr(splits, split)
        if len(index):
            features[split] = pipeline.transform(frame.iloc[index])
    feature_seconds = {k: round(v, 1) for k, v in pipeline.timings_.items()}

    targets = {
        name: train_target(name, values, labels[name], splits, features, settings, weighting)
        for name, values in columns.items()
    }

    models = {name: result.model for name, result in targets.items()}
    routing = default_routing(targets[Target.CATEGORY], settings)
    tags = train_tags(frame, splits, features, settings) if has_tags(frame) else None
    predicted = {name: result.validation_predictions for name, result in targets.items()}
    reference, pca = build_reference(
        features["train"],
        predicted,
        {n: m.labels for n, m in models.items()},
        settings.seed,
        validation=targets[Target.CATEGORY].validation_features,
        confidence=targets[Target.CATEGORY].validation_confidence,
    )
    info = {
        "data_fingerprint": fingerprint(frame),
        "routing_threshold": settings.routing_threshold,
        "routing_rule": routing["chosen_rule"],
        "conformal_alpha": settings.conformal_alpha,
        "weighting": weighting,
        "precision": resolve_precision(feature_config.embeddings.precision),
        "cross_fitting_folds": settings.cv_folds,
        "feature_config": feature_config.model_dump(),
        "feature_names": pipeline.get_feature_names_out().tolist(),
        "rows": {"train": len(splits.train), "validation": len(splits.validation), "test": len(splits.test)},
        **data_info,
    }
    path = save_bundle(
        out_dir,
        pipeline=pipeline,
        targets=models,
        reference=reference,
        reference_pca=pca,
        info=info,
        tags=None if tags is None else tags.model,
    )
    if mark_live_if_first and not (out_dir / LIVE_POINTER).exists():
        mark_live(path)
    return TrainResult(
        path=path,
        pipeline=pipeline,
        targets=targets,
        feature_seconds=feature_seconds,
        splits=splits,
        total_seconds=round(time.perf_counter() - started, 1),
        tags=tags,
    )
