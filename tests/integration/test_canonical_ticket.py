"""One canonical ticket and one routing rule, end to end: the service's cache and answers against
`triage predict` on the same tickets."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis
from fastapi.testclient import TestClient
from tests.integration.conftest import PREDICT, SHARED_REDIS_URL, clone_bundle
from typer.testing import CliRunner

from ticket_triage.cli import app
from ticket_triage.config import Settings
from ticket_triage.data.loader import load_tickets
from ticket_triage.data.schema import ColumnMap
from ticket_triage.models.bundle import load_bundle
from ticket_triage.models.predictor import CATEGORY, predict_frame, predict_probas
from ticket_triage.routing import RoutingPolicy
from ticket_triage.serving.cache import KEY_PREFIX
from ticket_triage.serving.inference import Scores, ServingModel
from ticket_triage.serving.schemas import Ticket

WORDS = "my card was declined at the shop this morning although my balance is fine so please help me pay"

#: Two pairs the old key (all whitespace collapsed, time cut to the hour) gave one entry each.
TICKETS = [
    {"ticket_id": "one-line", "subject": "Card declined", "description": WORDS},
    {
        "ticket_id": "broken",
        "subject": "Card declined",
        "description": WORDS.replace(" at ", "\nat ")
        .replace(" although ", "\nalthough ")
        .replace(" so ", "\nso "),
    },
    {
        "ticket_id": "at-09-05",
        "subject": "VPN drops",
        "description": "every hour",
        "created_at": "2026-03-03T09:05:00Z",
    },
    {
        "ticket_id": "at-09-55",
        "subject": "VPN drops",
        "description": "every hour",
        "created_at": "2026-03-03T09:55:00Z",
    },
]


def _keys(client: redis.Redis, version: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{KEY_PREFIX}:{version}:*"))


def test_line_breaks_and_minutes_get_their_own_cache_entries_and_the_clis_answers(
    make_client: Callable[..., TestClient],
    models_dir: Path,
    trained: Any,
    shared: tuple[redis.Redis, str],
    tmp_path: Path,
) -> None:
    redis_client, version = shared
    # The service's model version is the fixture's key namespace, so its entries go at teardown.
    clone_bundle(models_dir, trained.path, version)
    (models_dir / "LIVE").write_text(version + "\n")
    client = make_client(
        redis_url=SHARED_REDIS_URL,
        cache_signing_key="test-cache-signing-key-0123456789",
        encoder_runtime="torch",
    )

    response = client.post("/predict/batch?top_k=0", json={"tickets": TICKETS}, headers=PREDICT)
    assert response.status_code == 200, response.text
    api = response.json()["predictions"]
    assert [a["model_version"] for a in api] == [version] * 4
    assert [a["cached"] for a in api] == [False] * 4
    assert api[0]["probabilities"] != api[1]["probabilities"]  # the model reads the line breaks
    deadline = time.monotonic() + 10
    while len(_keys(redis_client, version)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)  # the cache is written behind the answer
    assert len(_keys(redis_client, version)) == 4

    again = client.post("/predict/batch?top_k=0", json={"tickets": TICKETS}, headers=PREDICT).json()
    assert [a["cached"] for a in again["predictions"]] == [True] * 4
    per_answer = ("cached", "prediction_id", "review_id")
    assert [{k: v for k, v in a.items() if k not in per_answer} for a in again["predictions"]] == [
        {k: v for k, v in a.items() if k not in per_answer} for a in api
    ]

    source = tmp_path / "tickets.csv"
    pd.DataFrame(
        {
            "id": [t["ticket_id"] for t in TICKETS],
            "subject": [t["subject"] for t in TICKETS],
            "body": [t["description"] for t in TICKETS],
            "opened": [t.get("created_at", "") for t in TICKETS],
        }
    ).to_csv(source, index=False)
    out = tmp_path / "cli.csv"
    args = ["predict", "--model", str(models_dir / version), "--data", str(source), "--text", "subject,body"]
    result = CliRunner().invoke(app, [*args, "--timestamp", "opened", "--out", str(out)])
    assert result.exit_code == 0, result.output
    cli = pd.read_csv(out, dtype={"id": str})
    assert cli["id"].tolist() == [a["ticket_id"] for a in api]
    assert cli["label"].tolist() == [a["category"] for a in api]
    assert cli["route"].tolist() == [a["route"] for a in api]
    assert cli["priority"].tolist() == [a["priority"] for a in api]
    for row, answer in zip(cli.to_dict("records"), api, strict=True):
        served = {p["label"]: p["probability"] for p in answer["probabilities"]}
        np.testing.assert_allclose(
            [row[f"prob_{label}"] for label in served], list(served.values()), atol=1e-5
        )


def test_the_cli_and_the_service_route_a_confidence_at_the_threshold_alike(
    trained: Any, synthetic_sample: Path, tmp_path: Path
) -> None:
    """At the threshold both auto-route, one step below it both send to review: with the bundle's own
    threshold, and with the operator's (``--threshold`` for the CLI, the setting for the service)."""
    columns = ColumnMap(text=("subject", "body"), id="id")
    frame = load_tickets([synthetic_sample], columns, require_label=False).frame.head(4)
    bundle = load_bundle(trained.path)
    _, probas = predict_probas(bundle, frame)
    row = probas[CATEGORY][0]
    confidence = float(row.max())
    ticket = Ticket(subject="the scores below are this ticket's")
    scores = Scores(category=row.astype(float).tolist())

    for n, (threshold, expected) in enumerate(
        ((confidence, "auto"), (math.nextafter(confidence, 1.0), "review"))
    ):
        own = clone_bundle(
            tmp_path, trained.path, f"at-{n}", edit=lambda m, t=threshold: m.update(routing_threshold=t)
        )
        own_bundle = load_bundle(own)
        cli_route = predict_frame(own_bundle, frame)["route"][0]
        served = ServingModel(own_bundle).answer(
            ticket,
            scores,
            top_k=1,
            routing=RoutingPolicy.from_settings(Settings()),
            cached=False,
            prediction_id="p",
        )
        assert (cli_route, served.route) == (expected, expected)

        cli_route = predict_frame(bundle, frame, RoutingPolicy(override=threshold))["route"][0]
        operator = RoutingPolicy.from_settings(Settings(routing_threshold=threshold))
        served = ServingModel(bundle).answer(
            ticket, scores, top_k=1, routing=operator, cached=False, prediction_id="p"
        )
        assert (cli_route, served.route) == (expected, expected)
