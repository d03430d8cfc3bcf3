"""Gradient-boosted trees on the dense feature view: the ensemble's strongest tabular members."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import xgboost as xgb

from ticket_triage.data.class_balance import sample_weights
from ticket_triage.features.base import FeatureSet
from ticket_triage.models.members.base import MemberBase


class XGBoostMember(MemberBase):
    """XGBoost ``hist`` trees, shallow, column-subsampled and coarsely binned: 77 classes in a minute."""

    #: Its predict_proba runs in XGBoost's C++ without the interpreter lock.
    runs_without_gil = True

    def __init__(
        self,
        rounds: int = 300,
        threads: int = 2,
        seed: int = 13,
        learning_rate: float = 0.2,
        max_depth: int = 4,
        max_bin: int = 64,
        colsample_bytree: float = 0.5,
        subsample: float = 0.8,
        min_child_weight: float = 1.0,
        early_stopping_rounds: int = 20,
        class_weight_power: float = 0.0,
        name: str = "xgboost",
    ) -> None:
        if rounds < 1:
            raise ValueError(f"XGBoostMember: rounds must be >= 1, got {rounds}")
        self.name = name
        self.rounds = rounds
        self.threads = threads
        self.seed = seed
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.max_bin = max_bin
        self.colsample_bytree = colsample_bytree
        self.subsample = subsample
        self.min_child_weight = min_child_weight
        self.early_stopping_rounds = early_stopping_rounds
        self.class_weight_power = class_weight_power
        self.n_classes_: int | None = None
        # Boosting rounds kept: the early-stopping optimum, or all of them without an eval set.
        self.n_rounds_: int | None = None
        self._model: xgb.XGBClassifier | None = None

    def _fit(
        self,
        features: FeatureSet,
        labels: np.ndarray,
        n_classes: int,
        evals: tuple[FeatureSet, np.ndarray] | None,
    ) -> None:
        model = xgb.XGBClassifier(
            n_estimators=self.rounds,
            objective="multi:softprob",
            tree_method="hist",
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            max_bin=self.max_bin,
            colsample_bytree=self.colsample_bytree,
            subsample=self.subsample,
            min_child_weight=self.min_child_weight,
            n_jobs=self.threads,
            random_state=self.seed,
            eval_metric="mlogloss",
            early_stopping_rounds=self.early_stopping_rounds if evals is not None else None,
        )
        fit_kwargs: dict[str, object] = {"verbose": False}
        if evals is not None:
            fit_kwargs["eval_set"] = [(evals[0].dense, evals[1])]
        weights = sample_weights(labels, n_classes, self.class_weight_power)
        model.fit(features.dense, labels, sample_weight=weights, **fit_kwargs)
        self._model = model
        self.n_rounds_ = int(model.best_iteration) + 1 if evals is not None else self.rounds

    def _scores(self, features: FeatureSet) -> np.ndarray:
        assert self._model is not None
        if self._model.n_jobs != self.threads:  # the service predicts with fewer threads than training used
            self._model.set_params(n_jobs=self.threads)
        return self._model.predict_proba(features.dense)


class LightGBMMember(MemberBase):
    """LightGBM leaf-wise trees: a boosting view whose errors differ from XGBoost's depth-wise trees."""

    def __init__(
        self,
        rounds: int = 300,
        threads: int = 2,
        seed: int = 13,
        learning_rate: float = 0.1,
        num_leaves: int = 15,
        max_bin: int = 63,
        feature_fraction: float = 0.5,
        bagging_fraction: float = 0.8,
        min_child_samples: int = 10,
        max_delta_step: float = 2.0,
        lambda_l2: float = 1.0,
        early_stopping_rounds: int = 20,
        class_weight_power: float = 0.0,
        name: str = "lightgbm",
    ) -> None:
        if rounds < 1:
            raise ValueError(f"LightGBMMember: rounds must be >= 1, got {rounds}")
        self.name = name
        self.rounds = rounds
        self.threads = threads
        self.seed = seed
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_bin = max_bin
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.min_child_samples = min_child_samples
        self.max_delta_step = max_delta_step
        self.lambda_l2 = lambda_l2
        self.early_stopping_rounds = early_stopping_rounds
        self.class_weight_power = class_weight_power
        self.n_classes_: int | None = None
        self.n_rounds_: int | None = None
        self._booster: lgb.Booster | None = None

    def _params(self, n_classes: int) -> dict[str, object]:
        return {
            "objective": "multiclass",
            "num_class": n_classes,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_bin": self.max_bin,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1 if self.bagging_fraction < 1.0 else 0,
            "min_child_samples": self.min_child_samples,
            # Without these two, 77-class softmax boosting diverged here after ~8 rounds (validation log-loss
            # 1.85 -> 28): near-pure leaves have tiny hessians and their Newton steps explode.
            "max_delta_step": self.max_delta_step,
            "lambda_l2": self.lambda_l2,
            "num_threads": self.threads,
            "seed": self.seed,
            # Same seed and threads must give the same model, or pickled artefacts cannot be reproduced.
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }

    def _fit(
        self,
        features: FeatureSet,
        labels: np.ndarray,
        n_classes: int,
        evals: tuple[FeatureSet, np.ndarray] | None,
    ) -> None:
        weights = sample_weights(labels, n_classes, self.class_weight_power)
        train = lgb.Dataset(features.dense, label=labels, weight=weights, free_raw_data=True)
        valid_sets: list[lgb.Dataset] = []
        callbacks: list[object] = []
        if evals is not None:
            valid_sets.append(lgb.Dataset(evals[0].dense, label=evals[1], reference=train))
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        booster = lgb.train(
            self._params(n_classes),
            train,
            num_boost_round=self.rounds,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        self._booster = booster
        self.n_rounds_ = (
            booster.best_iteration if evals is not None and booster.best_iteration > 0 else self.rounds
        )

    def _scores(self, features: FeatureSet) -> np.ndarray:
        assert self._booster is not None
        return self._booster.predict(features.dense, num_iteration=self.n_rounds_, num_threads=self.threads)
