"""Human review queue: predictions under the routing threshold wait here for a reviewer's answer."""

from __future__ import annotations

from ticket_triage.review.db import make_engine, migrate
from ticket_triage.review.models import (
    CLAIMED,
    PENDING,
    PRIORITY_RANK,
    RESOLVED,
    NewReviewItem,
    ReviewItem,
    priority_rank,
)
from ticket_triage.review.store import (
    NotLeaseHolderError,
    ResolveConflictError,
    ReviewError,
    ReviewNotFoundError,
    ReviewStore,
)

__all__ = [
    "CLAIMED",
    "PENDING",
    "PRIORITY_RANK",
    "RESOLVED",
    "NewReviewItem",
    "NotLeaseHolderError",
    "ResolveConflictError",
    "ReviewError",
    "ReviewItem",
    "ReviewNotFoundError",
    "ReviewStore",
    "make_engine",
    "migrate",
    "priority_rank",
]
