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

from ticket_triage.models.bundle import load_bundle

TICKET = {
    "ticket_id": "HD-1",
    "subject": "VPN keeps disconnecting",
    "description": "Since this morning the VPN client drops the connection every few minutes. "
    "I cannot reach the file server. Please help urgently.",
    "created_at": "2026-03-03T09:15:00Z",
    "channel": "email",
    "customer_tier": "gold",
}


def test_every_rule_routes_by_its_definition_and_the_set_does_not_depend_on_the_rule(
    make_client: Callable[..., TestClient], synthetic_sample: Path, tmp_path: Path
) -> None:
    tickets = _sample(synthetic_sample, 40)
    answers = {}
    for rule in ("threshold", "singleton", "both"):
        # A database per service: on a shared one the ticket ledger would answer these ticket ids with the
        # first service's decisions (retries get the first answer), whatever rule the next one routes by.
        client = make_client(
            routing_rule=rule,
            routing_threshold=0.5,
            conformal_alpha=0.2,
            database_file=tmp_path / f"{rule}.sqlite3",
        )
        response = client.post("/predict/batch", json={"tickets": tickets}, headers=PREDICT)
        assert response.status_code == 200, response.text
        answers[rule] = response.json()["predictions"]
    sets = [a["prediction_set"] for a in answers["threshold"]]
    assert (
        sets
        == [a["prediction_set"] for a in answers["singleton"]]
        == [a["prediction_set"] for a in answers["both"]]
    )
    sole = [s == [a["category"]] for s, a in zip(sets, answers["threshold"], strict=True)]
    sure = [a["confidence"] >= 0.5 for a in answers["threshold"]]
    assert [a["route"] == "auto" for a in answers["threshold"]] == sure
    assert [a["route"] == "auto" for a in answers["singleton"]] == sole
    assert [a["route"] == "auto" for a in answers["both"]] == [
        x and y for x, y in zip(sure, sole, strict=True)
    ]
    assert any(sole) and not all(sole)  # alpha 0.2 on this model: some sure tickets, some not


def test_a_wider_alpha_never_grows_a_set(
    make_client: Callable[..., TestClient], synthetic_sample: Path, tmp_path: Path
) -> None:
    tickets = _sample(synthetic_sample, 20)
    sizes = {}
    for alpha in (0.02, 0.3):
        # Own databases: the ticket ledger would answer the second service with the first one's sets.
        client = make_client(conformal_alpha=alpha, database_file=tmp_path / f"alpha-{alpha}.sqlite3")
        body = client.post("/predict/batch", json={"tickets": tickets}, headers=PREDICT).json()
        sizes[alpha] = [set(a["prediction_set"]) for a in body["predictions"]]
    assert all(wide <= narrow for narrow, wide in zip(sizes[0.02], sizes[0.3], strict=True))
    assert sum(map(len, sizes[0.3])) < sum(map(len, sizes[0.02]))


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
    in_set = body["prediction_set"]
    assert in_set and set(in_set) <= set(labels)
    shown = {
        p["label"]: p["probability"]
        for p in client.post("/predict?top_k=0", json=TICKET, headers=PREDICT).json()["probabilities"]
    }
    assert [shown[label] for label in in_set] == sorted((shown[label] for label in in_set), reverse=True)
    rule = load_bundle(trained.path).routing.rule
    sure = {"threshold": body["confidence"] >= 0.7, "singleton": in_set == [body["category"]]}
    sure["both"] = sure["threshold"] and sure["singleton"]
    assert body["route"] == ("auto" if sure[rule] else "review")
    assert body["priority"] in trained.targets["priority"].model.labels
    assert 0.0 < body["priority_confidence"] <= 1.0
    tag_model = load_bundle(trained.path).tags
    thresholds = dict(zip(tag_model.tags, tag_model.thresholds, strict=True))
    assert body["tags"], "the VPN ticket should carry some tag"
    for tag in body["tags"]:
        assert tag["probability"] >= thresholds[tag["label"]] - 1e-6
    assert [t["probability"] for t in body["tags"]] == sorted(
        (t["probability"] for t in body["tags"]), reverse=True
    )


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
    assert [p["route"] for p in api] == list(cli["route"])
    if runtime == "torch":  # ONNX's float32 may move a label across its set's boundary
        assert ["|".join(p["prediction_set"]) for p in api] == list(cli["prediction_set"])
        assert ["|".join(t["label"] for t in p["tags"]) for p in api] == list(cli["tags"])
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


def test_a_set_rule_is_refused_for_a_bundle_trained_without_sets(trained: Any) -> None:
    from ticket_triage.routing import RoutingPolicy

    bundle = load_bundle(trained.path)  # a private copy: the session's bundle keeps its sets
    assert bundle.targets["category"].conformal is not None
    bundle.targets["category"].conformal = None  # as in a bundle from before conformal sets
    bundle.check_routing(RoutingPolicy(rule_override="threshold"))
    for rule in ("singleton", "both"):
        with pytest.raises(
            ValueError, match=r"needs conformal prediction sets.*TRIAGE_ROUTING_RULE=threshold"
        ):
            bundle.check_routing(RoutingPolicy(rule_override=rule))


def test_explain_names_words_of_the_ticket_for_the_label_and_the_runner_up(client: TestClient) -> None:
    plain = client.post("/predict", json=TICKET, headers=PREDICT).json()
    assert plain["explanation"] is None  # off by default
    response = client.post("/predict?explain=true&top_k=2", json=TICKET, headers=PREDICT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["category"] == plain["category"] and body["confidence"] == plain["confidence"]
    labels = body["explanation"]["labels"]
    assert [e["label"] for e in labels] == [p["label"] for p in body["probabilities"]]
    # The answer may come from ONNX Runtime in float32, the explanation runs the torch path (bf16 where the
    # CPU has it): the same model, probabilities a little apart (see test_api_agrees_with_the_cli).
    assert labels[0]["probability"] == pytest.approx(body["confidence"], abs=0.02)
    named = [w for e in labels for w in e["words"]]
    assert named, "some word should raise the predicted category"
    for w in named:
        assert TICKET[w["field"]][w["start"] : w["end"]] == w["word"]
        assert w["weight"] > 0
    metrics = client.get("/metrics").text
    assert "triage_explain_seconds_count 1.0" in metrics
