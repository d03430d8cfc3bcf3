"""The routing decision, for ``triage predict`` and the service alike: auto-route or send to a person.

One override rule: the bundle's threshold (the one its evaluation report was written at), unless the
operator set one, with ``triage predict --threshold`` or ``TRIAGE_ROUTING_THRESHOLD`` for the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from ticket_triage.config import Settings

Route = Literal["auto", "review"]
AUTO: Route = "auto"
REVIEW: Route = "review"


@dataclass(frozen=True)
class RoutingPolicy:
    """``override``: the operator's threshold, or None for each bundle's own."""

    override: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RoutingPolicy:
        """Only a threshold the operator set counts: the settings' default is not a choice of theirs."""
        explicit = "routing_threshold" in settings.model_fields_set
        return cls(settings.routing_threshold if explicit else None)

    def threshold(self, bundle_threshold: float) -> float:
        return bundle_threshold if self.override is None else self.override

    def routes(self, confidence: np.ndarray | float, bundle_threshold: float) -> np.ndarray:
        """``auto`` where the model is sure enough (at the threshold it is), else ``review``."""
        sure = np.asarray(confidence, dtype=np.float64) >= self.threshold(bundle_threshold)
        return np.where(sure, AUTO, REVIEW)

    def route(self, confidence: float, bundle_threshold: float) -> Route:
        """:meth:`routes` for one answer."""
        return AUTO if self.routes(confidence, bundle_threshold) == AUTO else REVIEW
