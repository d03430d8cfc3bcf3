"""The routing policy: one threshold rule and one comparison for the CLI and the service."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ticket_triage.config import Settings
from ticket_triage.routing import RoutingPolicy


def test_a_confidence_at_the_threshold_is_auto_and_just_below_is_review() -> None:
    policy = RoutingPolicy()
    below = math.nextafter(0.7, 0.0)
    assert policy.route(0.7, 0.7) == "auto"
    assert policy.route(below, 0.7) == "review"
    routes = policy.routes(np.array([0.7, below, 1.0, 0.0]), 0.7)
    assert routes.tolist() == ["auto", "review", "auto", "review"]


def test_the_bundle_threshold_holds_unless_the_operator_set_one() -> None:
    assert RoutingPolicy().threshold(0.55) == 0.55
    assert RoutingPolicy(override=0.9).threshold(0.55) == 0.9
    assert RoutingPolicy(override=0.0).threshold(0.55) == 0.0  # zero is a choice, not "unset"


def test_only_an_explicit_setting_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIAGE_ROUTING_THRESHOLD", raising=False)
    assert RoutingPolicy.from_settings(Settings()).override is None  # the default is not the operator's
    assert RoutingPolicy.from_settings(Settings(routing_threshold=0.7)).override == 0.7
    monkeypatch.setenv("TRIAGE_ROUTING_THRESHOLD", "0.62")
    assert RoutingPolicy.from_settings(Settings()).override == 0.62
