"""The five ensemble members and the factory that builds them with one set of run parameters."""

from __future__ import annotations

from pathlib import Path

from ticket_triage.models.base import Member
from ticket_triage.models.members.bert import BertMember
from ticket_triage.models.members.boosting import LightGBMMember, XGBoostMember
from ticket_triage.models.members.forest import RandomForestMember
from ticket_triage.models.members.linear import LogRegMember

__all__ = [
    "BertMember",
    "LightGBMMember",
    "LogRegMember",
    "RandomForestMember",
    "XGBoostMember",
    "build_members",
]


def build_members(
    *,
    xgboost_rounds: int,
    lightgbm_rounds: int,
    forest_trees: int,
    threads: int,
    seed: int,
    bert_epochs: int,
    bert_batch_size: int,
    bert_learning_rate: float,
    bert_max_length: int,
    bert_precision: str,
    bert_model_path: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Member]:
    """All members keyed by the names the ensemble weights use (see ``DEFAULT_WEIGHTS``)."""
    members: list[Member] = [
        XGBoostMember(rounds=xgboost_rounds, threads=threads, seed=seed),
        LightGBMMember(rounds=lightgbm_rounds, threads=threads, seed=seed),
        RandomForestMember(trees=forest_trees, threads=threads, seed=seed),
        BertMember(
            model_path=bert_model_path,
            epochs=bert_epochs,
            batch_size=bert_batch_size,
            learning_rate=bert_learning_rate,
            max_length=bert_max_length,
            precision=bert_precision,
            threads=threads,
            seed=seed,
            progress=progress,
        ),
        LogRegMember(threads=threads, seed=seed),
    ]
    return {m.name: m for m in members}
