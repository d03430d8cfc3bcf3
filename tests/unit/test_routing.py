"""The routing policy: three rules and one override rule per choice, shared by the CLI and the service."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ticket_triage.cli.predict import RoutingRule
from ticket_triage.config import Settings
from ticket_triage.routing import RULES, BundleRouting, RoutingPolicy, sole_label

BUNDLE = BundleRouting(threshold=0.7)


def test_a_confidence_at_the_threshold_is_auto_and_just_below_is_review() -> None:
    policy = RoutingPolicy()
    below = math.nextafter(0.7, 0.0)
    assert policy.route(0.7, BUNDLE) == "auto"
    assert policy.route(below, BUNDLE) == "review"
    routes = policy.routes(np.array([0.7, below, 1.0, 0.0]), BUNDLE)
    assert routes.tolist() == ["auto", "review", "auto", "review"]


def test_the_bundle_choices_hold_unless_the_operator_set_one() -> None:
    bundle = BundleRouting(threshold=0.55, rule="singleton", alpha=0.1)
    assert RoutingPolicy().threshold(bundle) == 0.55
    assert RoutingPolicy(override=0.9).threshold(bundle) == 0.9
    assert RoutingPolicy(override=0.0).threshold(bundle) == 0.0  # zero is a choice, not "unset"
    assert RoutingPolicy().rule(bundle) == "singleton"
    assert RoutingPolicy(rule_override="threshold").rule(bundle) == "threshold"
    assert RoutingPolicy().alpha(bundle) == 0.1
    assert RoutingPolicy(alpha_override=0.2).alpha(bundle) == 0.2


def test_only_an_explicit_setting_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRIAGE_ROUTING_THRESHOLD", "TRIAGE_ROUTING_RULE", "TRIAGE_CONFORMAL_ALPHA"):
        monkeypatch.delenv(name, raising=False)
    unset = RoutingPolicy.from_settings(Settings())
    assert (unset.override, unset.rule_override, unset.alpha_override) == (None, None, None)
    assert RoutingPolicy.from_settings(Settings(routing_threshold=0.7)).override == 0.7
    monkeypatch.setenv("TRIAGE_ROUTING_THRESHOLD", "0.62")
    monkeypatch.setenv("TRIAGE_ROUTING_RULE", "both")
    monkeypatch.setenv("TRIAGE_CONFORMAL_ALPHA", "0.1")
    chosen = RoutingPolicy.from_settings(Settings())
    assert (chosen.override, chosen.rule_override, chosen.alpha_override) == (0.62, "both", 0.1)


def test_a_set_counts_as_sure_only_when_it_is_exactly_the_predicted_label() -> None:
    sets = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
    best = np.array([0, 0, 0, 0])  # row 2 is a singleton of another label than the predicted one
    assert sole_label(sets, best).tolist() == [True, False, False, False]


def test_each_rule_decides_as_documented() -> None:
    confidence = np.array([0.9, 0.9, 0.5, 0.5])
    sole = np.array([True, False, True, False])
    expected = {
        "threshold": ["auto", "auto", "review", "review"],
        "singleton": ["auto", "review", "auto", "review"],
        "both": ["auto", "review", "review", "review"],
    }
    for rule, routes in expected.items():
        assert RoutingPolicy(rule_override=rule).routes(confidence, BUNDLE, sole).tolist() == routes


def test_a_set_rule_without_sets_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="needs conformal prediction sets"):
        RoutingPolicy(rule_override="singleton").route(0.9, BUNDLE)
    with pytest.raises(ValueError, match="routing rule must be one of"):
        RoutingPolicy(rule_override="majority")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        RoutingPolicy(alpha_override=1.0)


def test_the_cli_offers_exactly_the_rules() -> None:
    assert tuple(r.value for r in RoutingRule) == RULES
