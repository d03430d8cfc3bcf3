"""Which parts of a model pass may run beside the pipeline's thread, as the model objects declare it.

Serving asks the ensemble and the feature pipeline; it names no member and no family. Until the members
and families carry their declarations (``runs_without_gil``, ``runs_in_worker_process``), the
``_UNDECLARED_*`` fallbacks below keep the placement the service measured; they go when those land.
"""

from __future__ import annotations

from typing import Any

from ticket_triage.features.entities import EntityFeatures
from ticket_triage.features.pipeline import FeaturePipeline
from ticket_triage.models.ensemble import WeightedEnsemble
from ticket_triage.models.members import XGBoostMember

#: Shim: members whose prediction runs in compiled code without the interpreter lock, for members that
#: do not say so themselves yet.
_UNDECLARED_GIL_FREE: tuple[type, ...] = (XGBoostMember,)
#: Shim: families that hold the interpreter lock for most of their work and read only the text, so they
#: gain from a process of their own (spaCy: see serving/entity_worker.py).
_UNDECLARED_WORKER_PROCESS: tuple[type, ...] = (EntityFeatures,)


def helper_thread_members(ensemble: WeightedEnsemble) -> list[str]:
    """Active members that may run on the helper thread: it is idle once the encoder is done."""
    return [
        name
        for name, member in ensemble.active.items()
        if getattr(member, "runs_without_gil", isinstance(member, _UNDECLARED_GIL_FREE))
    ]


def encoder_family(pipeline: FeaturePipeline) -> tuple[str, Any] | None:
    """The sentence encoder (the family that also produces the fine-tuned heads), if it is enabled."""
    return next(((name, f) for name, f in pipeline.families_ if getattr(f, "produces_heads", False)), None)


def worker_process_families(pipeline: FeaturePipeline) -> list[tuple[str, Any]]:
    """Families worth computing in the worker process while this one runs the others."""
    return [
        (name, family)
        for name, family in pipeline.families_
        if getattr(family, "runs_in_worker_process", isinstance(family, _UNDECLARED_WORKER_PROCESS))
    ]
