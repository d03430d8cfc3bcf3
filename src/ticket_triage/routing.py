"""The routing decision, for ``triage predict`` and the service alike: auto-route or send to a person.

Three rules (``docs/conformal.md``):

- ``threshold``: auto when the top calibrated probability reaches the threshold;
- ``singleton``: auto when the conformal prediction set holds exactly one label, the predicted one;
- ``both``: auto only when both hold.

One override rule for each of threshold, rule and alpha: the bundle's own (what its evaluation report was
written at and chose), unless the operator set one, with ``triage predict`` options or the
``TRIAGE_ROUTING_THRESHOLD`` / ``TRIAGE_ROUTING_RULE`` / ``TRIAGE_CONFORMAL_ALPHA`` settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast, get_args

import numpy as np

from ticket_triage.models.conformal import DEFAULT_ALPHA, check_alpha

if TYPE_CHECKING:
    from ticket_triage.config import Settings

Route = Literal["auto", "review"]
AUTO: Route = "auto"
REVIEW: Route = "review"

Rule = Literal["threshold", "singleton", "both"]
RULES: tuple[Rule, ...] = get_args(Rule)
#: The rules that read the conformal set, so they need a bundle calibrated for it.
SET_RULES: frozenset[Rule] = frozenset({"singleton", "both"})


def check_rule(rule: str) -> Rule:
    if rule not in RULES:
        raise ValueError(f"routing rule must be one of {', '.join(RULES)}; got {rule!r}")
    return cast(Rule, rule)


@dataclass(frozen=True)
class BundleRouting:
    """What a bundle was evaluated at: its threshold, the rule its evaluation chose, its alpha."""

    threshold: float
    rule: Rule = "threshold"
    alpha: float = DEFAULT_ALPHA


def sole_label(sets: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Per row: the set is exactly {the predicted label} (a singleton of another label does not count)."""
    sets = np.asarray(sets, dtype=bool)
    rows = np.arange(len(sets))
    return (sets.sum(axis=1) == 1) & sets[rows, np.asarray(best, dtype=np.int64)]


def rule_routes(rule: Rule, confidence: np.ndarray, threshold: float, sole: np.ndarray | None) -> np.ndarray:
    """The boolean "auto" mask of one rule; ``sole`` (from :func:`sole_label`) is needed by set rules."""
    sure = np.asarray(confidence, dtype=np.float64) >= threshold
    if rule == "threshold":
        return sure
    if sole is None:
        raise ValueError(f"routing rule {rule!r} needs conformal prediction sets, and this model has none")
    return np.asarray(sole, dtype=bool) if rule == "singleton" else sure & np.asarray(sole, dtype=bool)


@dataclass(frozen=True)
class RoutingPolicy:
    """The operator's choices; None keeps each bundle's own."""

    override: float | None = None
    rule_override: Rule | None = None
    alpha_override: float | None = None

    def __post_init__(self) -> None:
        if self.rule_override is not None:
            check_rule(self.rule_override)
        if self.alpha_override is not None:
            check_alpha(self.alpha_override)

    @classmethod
    def from_settings(cls, settings: Settings) -> RoutingPolicy:
        """Only what the operator set counts: the settings' defaults are not a choice of theirs."""
        chosen = settings.model_fields_set
        return cls(
            settings.routing_threshold if "routing_threshold" in chosen else None,
            settings.routing_rule if "routing_rule" in chosen else None,
            settings.conformal_alpha if "conformal_alpha" in chosen else None,
        )

    def threshold(self, bundle: BundleRouting) -> float:
        return bundle.threshold if self.override is None else self.override

    def rule(self, bundle: BundleRouting) -> Rule:
        return bundle.rule if self.rule_override is None else self.rule_override

    def alpha(self, bundle: BundleRouting) -> float:
        return bundle.alpha if self.alpha_override is None else self.alpha_override

    def routes(
        self, confidence: np.ndarray | float, bundle: BundleRouting, sole: np.ndarray | None = None
    ) -> np.ndarray:
        """``auto`` where the rule in force says the model is sure enough, else ``review``."""
        auto = rule_routes(self.rule(bundle), np.atleast_1d(confidence), self.threshold(bundle), sole)
        return np.where(auto, AUTO, REVIEW)

    def route(self, confidence: float, bundle: BundleRouting, sole: bool | None = None) -> Route:
        """:meth:`routes` for one answer."""
        mask = None if sole is None else np.array([sole])
        return AUTO if self.routes(confidence, bundle, mask)[0] == AUTO else REVIEW


def mapped_route(route: Route, queue_id: str | None, map_in_force: bool) -> Route:
    """With a route map in force, only a label the map names may be sent out: the rest go to review."""
    if map_in_force and queue_id is None:
        return REVIEW
    return route
