"""The prediction API on a real trained bundle: answers, caching, batch order, and agreement with the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.integration.conftest import PREDICT, REVIEW

TICKET = {
    "ticket_id": "HD-1",
    "subject": "VPN keeps disconnecting",
    "description": "Since this morning the VPN client drops the connection every few minutes. "
    "I cannot reach the file server. Please help urgently.",
    "created_at": "2026-03-03T09:15:00Z",
    "channel": "email",
    "customer_tier": "gold",
}


def _sample(synthetic_sample: Path, n: int) -> list[dict[str, Any]]:
    frame = pd.read_csv(synthetic_sample, dtype=str, keep_default_na=False).head(n)
    return [
        {"ticket_id": row["id"], "subject": row["subject"], "description": row["body"]}
        for _, row in frame.iterrows()
    ]


def test_predict_answers_with_the_documented_fields(client: TestClient, trained: Any) -> None:
    response = client.post("/predict", json=TICKET, headers=PREDICT)
    assert response.status_code == 200, response.text
    body = response.json()
    labels = trained.targets["category"].model.labels
    assert body["ticket_id"] == "HD-1"
    assert body["category"] in labels
    assert body["model_version"] == trained.path.name
    assert body["cached"] is False
    probs = body["probabilities"]
    assert len(probs) == 5
    assert probs[0]["label"] == body["category"]
    assert probs[0]["probability"] == body["confidence"]
    assert [p["probability"] for p in probs] == sorted((p["probability"] for p in probs), reverse=True)
    assert body["route"] == ("auto" if body["confidence"] >= 0.7 else "review")
    assert body["priority"] in trained.targets["priority"].model.labels
    assert 0.0 < body["priority_confidence"] <= 1.0


def test_top_k_zero_lists_every_label_summing_to_one(client: TestClient, trained: Any) -> None:
    body = client.post("/predict?top_k=0", json=TICKET, headers=PREDICT).json()
    labels = trained.targets["category"].model.labels
    assert sorted(p["label"] for p in body["probabilities"]) == sorted(labels)
    assert sum(p["probability"] for p in body["probabilities"]) == pytest.approx(1.0, abs=1e-4)


def test_repeat_is_served_from_the_cache_with_the_same_answer(client: TestClient) -> None:
    first = client.post("/predict", json=TICKET, headers=PREDICT).json()
    again = client.post(
        "/predict", json={**TICKET, "ticket_id": "HD-2", "metadata": {"x": 1}}, headers=PREDICT
    )
    second = again.json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["ticket_id"] == "HD-2"  # the id is the caller's, not the cached one
    per_answer = ("cached", "ticket_id", "review_id", "prediction_id")
    assert {k: v for k, v in second.items() if k not in per_answer} == {
        k: v for k, v in first.items() if k not in per_answer
    }
    assert second["prediction_id"] != first["prediction_id"]  # every answer is its own audit record
    other_hour = client.post(
        "/predict", json={**TICKET, "created_at": "2026-03-03T23:15:00Z"}, headers=PREDICT
    )
    assert other_hour.json()["cached"] is False  # the hour feeds temporal features, so it is part of the key
    hits = _metric(client, 'triage_cache_lookups_total{backend="memory",result="hit"}')
    assert hits == 1.0


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_api_agrees_with_the_cli(
    make_client: Callable[..., TestClient], trained: Any, synthetic_sample: Path, runtime: str
) -> None:
    """torch is what `triage predict` runs, so it must agree exactly; ONNX Runtime runs in float32, so it
    is held to the same CLI run in float32 (on a CPU with native bf16 the CLI would otherwise run bf16,
    whose rounding flips near-ties of this small model), where it may move probabilities a little but
    not the answers."""
    from ticket_triage.data.loader import load_tickets
    from ticket_triage.data.schema import ColumnMap
    from ticket_triage.models.bundle import load_bundle
    from ticket_triage.models.predictor import predict_frame

    client = make_client(encoder_runtime=runtime, entity_process=True)  # the service's default path
    tickets = _sample(synthetic_sample, 12)
    response = client.post("/predict/batch?top_k=0", json={"tickets": tickets}, headers=PREDICT)
    assert response.status_code == 200, response.text
    api = response.json()["predictions"]
    columns = ColumnMap(text=("subject", "body"), id="id")
    frame = load_tickets([synthetic_sample], columns, require_label=False).frame.head(12)
    bundle = load_bundle(trained.path)
    if runtime == "onnx":
        bundle.pipeline.family("embeddings").precision = "fp32"
    cli = predict_frame(bundle, frame)
    assert [p["ticket_id"] for p in api] == list(cli["id"])
    assert [p["category"] for p in api] == list(cli["label"])
    assert [p["priority"] for p in api] == list(cli["priority"])
    tolerance = 1e-5 if runtime == "torch" else 0.02
    np.testing.assert_allclose([p["confidence"] for p in api], cli["confidence"], atol=tolerance)


def test_batch_keeps_order_computes_only_misses_and_matches_singles(
    client: TestClient, synthetic_sample: Path
) -> None:
    tickets = _sample(synthetic_sample, 8)
    warm = client.post("/predict", json=tickets[3], headers=PREDICT).json()
    batch = [*tickets, {**tickets[5], "ticket_id": "dup"}]
    response = client.post("/predict/batch", json={"tickets": batch}, headers=PREDICT)
    assert response.status_code == 200, response.text
    body = response.json()
    answers = body["predictions"]
    assert [a["ticket_id"] for a in answers] == [t["ticket_id"] for t in batch]
    assert [a["cached"] for a in answers] == [i == 3 for i in range(len(batch))]
    assert body["cached"] == 1
    assert answers[3]["category"] == warm["category"]
    assert answers[8]["category"] == answers[5]["category"]
    assert answers[8]["confidence"] == answers[5]["confidence"]
    single = client.post("/predict", json=tickets[6], headers=PREDICT).json()
    assert single["cached"] is True  # the batch stored its computed answers
    assert single["confidence"] == answers[6]["confidence"]


def test_unknown_customer_tier_is_accepted_as_unknown(client: TestClient) -> None:
    response = client.post("/predict", json={**TICKET, "customer_tier": "galactic-platinum"}, headers=PREDICT)
    assert response.status_code == 200, response.text
    assert response.json()["category"]


def test_health_model_metrics_and_docs(client: TestClient, trained: Any) -> None:
    assert client.get("/livez").json() == {"status": "alive"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["checks"]["model"]["version"] == trained.path.name
    assert ready["checks"]["cache"]["backend"] == "memory"
    card = client.get("/model", headers=REVIEW).json()
    assert card["version"] == trained.path.name
    assert card["targets"]["category"]["labels"] == trained.targets["category"].model.labels
    assert set(card["targets"]["category"]["weights"]) == {
        "xgboost",
        "lightgbm",
        "random_forest",
        "bert",
        "logreg",
    }
    assert card["evaluation"]["category"]["accuracy"] > 0.3
    client.post("/predict", json=TICKET, headers=PREDICT)
    assert _metric(client, 'triage_http_requests_total{method="POST",route="/predict",status="200"}') >= 1
    text = client.get("/metrics").text
    assert (
        'triage_http_request_duration_seconds_bucket{le="0.05",method="POST",route="/predict",status="200"}'
        in text
    )
    assert client.get("/docs").status_code == 200
    assert "/predict/batch" in client.get("/openapi.json").json()["paths"]


def _metric(client: TestClient, series: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in /metrics")
