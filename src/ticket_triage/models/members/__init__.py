"""The five ensemble members and the factory that builds them with one set of run parameters."""

from __future__ import annotations

from ticket_triage.models.base import Member
from ticket_triage.models.members.bert import EncoderHeadMember
from ticket_triage.models.members.boosting import LightGBMMember, XGBoostMember
from ticket_triage.models.members.forest import RandomForestMember
from ticket_triage.models.members.linear import LogRegMember

__all__ = [
    "EncoderHeadMember",
    "LightGBMMember",
    "LogRegMember",
    "RandomForestMember",
    "XGBoostMember",
    "build_members",
]


def build_members(
    *,
    target: str,
    xgboost_rounds: int,
    lightgbm_rounds: int,
    forest_trees: int,
    threads: int,
    seed: int,
    class_weight_power: float = 0.0,
    with_encoder_head: bool = True,
) -> dict[str, Member]:
    """All members keyed by the names the ensemble weights use (see ``DEFAULT_WEIGHTS``).

    The "bert" member reads the fine-tuned encoder's ``target`` head; without a fine-tuned encoder
    (``with_encoder_head=False``) the ensemble has four members.
    """
    members: list[Member] = [
        XGBoostMember(
            rounds=xgboost_rounds, threads=threads, seed=seed, class_weight_power=class_weight_power
        ),
        LightGBMMember(
            rounds=lightgbm_rounds, threads=threads, seed=seed, class_weight_power=class_weight_power
        ),
        RandomForestMember(
            trees=forest_trees, threads=threads, seed=seed, class_weight_power=class_weight_power
        ),
        LogRegMember(threads=threads, seed=seed, class_weight_power=class_weight_power),
    ]
    if with_encoder_head:
        members.insert(3, EncoderHeadMember(target=target))
    return {m.name: m for m in members}
