"""The route map on the real model: only mapped labels leave as routes, and a bad map stops start-up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.integration.conftest import PREDICT, REVIEW

from ticket_triage.models.bundle import read_manifest
from ticket_triage.route_map import RouteMapError


def test_a_label_without_a_mapping_goes_to_review_never_out(
    make_client: Callable[..., TestClient], trained: Any, synthetic_sample: Path, tmp_path: Path
) -> None:
    labels = list(read_manifest(trained.path).targets["category"])
    mapped = {label: f"group-{n}" for n, label in enumerate(labels[: len(labels) // 2])}
    lines = ["[default]", *(f'"{label}" = "{queue}"' for label, queue in mapped.items())]
    routes = tmp_path / "routes.toml"
    routes.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # Threshold 0: the model would auto-route everything, so only the map sends tickets to review.
    client = make_client(routing_threshold=0.0, routing_rule="threshold", route_map_file=routes)
    frame = pd.read_csv(synthetic_sample, dtype=str, keep_default_na=False).head(60)
    tickets = [{"subject": s, "description": b} for s, b in zip(frame["subject"], frame["body"], strict=True)]
    answers = client.post("/predict/batch", json={"tickets": tickets}, headers=PREDICT).json()["predictions"]
    routed = {"auto": 0, "review": 0}
    for answer in answers:
        routed[answer["route"]] += 1
        if answer["category"] in mapped:
            assert answer["route"] == "auto" and answer["queue_id"] == mapped[answer["category"]]
        else:
            assert answer["route"] == "review" and answer["queue_id"] is None
            assert answer["review_id"] is not None
    assert routed["auto"] and routed["review"], routed  # both kinds met on these 60 tickets
    queued = client.get("/reviews", params={"limit": 100}, headers=REVIEW).json()["items"]
    assert len(queued) == routed["review"]
    assert all(item["predicted_category"] not in mapped for item in queued)


def test_a_map_naming_a_label_the_model_does_not_have_stops_start_up(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text('[zendesk]\n"Biling" = 360001\n', encoding="utf-8")
    with pytest.raises(RouteMapError, match="'Biling'"):
        make_client(route_map_file=routes)
