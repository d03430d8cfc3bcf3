"""Train on real tickets, save, reload, predict: the bundle and the CLI contract end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ticket_triage.cli import app
from ticket_triage.data.loader import load_tickets
from ticket_triage.data.schema import ColumnMap
from ticket_triage.models.bundle import BundleError, load_bundle
from ticket_triage.models.manifest import Manifest
from ticket_triage.models.predictor import predict_frame

runner = CliRunner()
COLUMNS = ColumnMap(text=("subject", "body"), label="queue", priority="priority", id="id")


def _frame(path: Path) -> pd.DataFrame:
    return load_tickets([path], COLUMNS, require_label=True).frame


def test_reloaded_bundle_predicts_identically(trained, synthetic_sample: Path) -> None:
    frame = _frame(synthetic_sample).head(80)
    in_memory = trained.pipeline.transform(frame)
    before = {name: t.model.predict_proba(in_memory) for name, t in trained.targets.items()}
    bundle = load_bundle(trained.path)
    assert bundle.targets["category"].labels == trained.targets["category"].model.labels
    reloaded = bundle.pipeline.transform(frame)
    np.testing.assert_array_equal(reloaded.dense, in_memory.dense)
    for name, target in bundle.targets.items():
        np.testing.assert_array_equal(target.predict_proba(reloaded), before[name])


def test_bundle_holds_report_reference_and_manifest(trained) -> None:
    text = (trained.path / "manifest.json").read_text()
    manifest = json.loads(text)
    assert set(manifest["targets"]) == {"category", "priority"}
    assert len(manifest["data_fingerprint"]) == 64
    assert manifest["libraries"]["scikit-learn"] == "1.9.1"
    assert json.dumps(Manifest.from_json(manifest).to_json(), indent=1) == text  # typed, nothing lost
    reference = json.loads((trained.path / "reference.json").read_text())
    assert any(name.startswith("sentiment__") for name in reference["features"])
    for bins in reference["features"].values():
        assert abs(sum(bins["proportions"]) - 1) < 1e-6
    report = json.loads((trained.path / "evaluation" / "report.json").read_text())
    systems = report["targets"]["category"]["systems"]
    for name in (
        "xgboost",
        "lightgbm",
        "random_forest",
        "bert",
        "logreg",
        "ensemble (seed weights)",
        "ensemble (learned weights)",
        "ensemble (calibrated)",
        "baseline (TF-IDF + LinearSVC)",
    ):
        assert name in systems
    for png in ("confusion_category.png", "calibration_category.png", "risk_coverage_priority.png"):
        assert (trained.path / "evaluation" / png).read_bytes()[:4] == b"\x89PNG"


def test_predict_cli_writes_contract_columns_in_input_order(
    trained, synthetic_sample: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred.csv"
    result = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(trained.path),
            "--data",
            str(synthetic_sample),
            "--text",
            "subject,body",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    pred = pd.read_csv(out)
    source = pd.read_csv(synthetic_sample)
    assert pred["id"].tolist() == source["id"].tolist()
    labels = load_bundle(trained.path).targets["category"].labels
    assert list(pred.columns[:6]) == ["id", "label", "confidence", "route", "priority", "priority_confidence"]
    assert [c for c in pred.columns if c.startswith("prob_")] == [f"prob_{label}" for label in labels]
    probs = pred[[f"prob_{label}" for label in labels]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert (pred["confidence"] == probs.max(axis=1)).all()
    rule = load_bundle(trained.path).routing.rule
    sole = pred["prediction_set"] == pred["label"]
    sure = {
        "threshold": pred["confidence"] >= 0.7,
        "singleton": sole,
        "both": (pred["confidence"] >= 0.7) & sole,
    }
    assert (sure[rule] == (pred["route"] == "auto")).all()
    assert list(pred.columns[6:8]) == ["prediction_set", "tags"]
    assert set(pred["priority"]) <= {"low", "medium", "high"}


def test_evaluate_cli_reports_every_system(trained, synthetic_sample: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(trained.path),
            "--data",
            str(synthetic_sample),
            "--text",
            "subject,body",
            "--label",
            "queue",
            "--priority",
            "priority",
            "--tags",
            ",".join(f"tag_{i}" for i in range(1, 9)),
            "--out",
            str(tmp_path / "eval"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["targets"]["category"]["n_rows"] == len(pd.read_csv(synthetic_sample))
    assert "baseline (TF-IDF + LinearSVC)" in report["targets"]["priority"]["systems"]
    assert "accuracy" in result.output
    tags = report["tags"]
    assert tags["rows"] == len(pd.read_csv(synthetic_sample)) and tags["tags"] == len(trained.tags.model.tags)
    for system in ("model", "baseline"):
        assert 0 < tags[system]["micro_f1"] <= 1 and 0 <= tags[system]["hamming_loss"] < 1
    assert "tags: micro-F1" in result.output
    conformal = report["targets"]["category"]["conformal"]
    assert conformal["chosen_rule"] in ("threshold", "singleton", "both") and 0 < conformal["coverage"] <= 1
    assert "Conformal prediction sets" in (tmp_path / "eval" / "report.md").read_text()


def test_models_folder_resolves_to_live_bundle(trained) -> None:
    assert load_bundle(trained.path.parent).path == trained.path


@pytest.fixture()
def bundle_copy(trained, tmp_path: Path) -> Path:
    copy = tmp_path / trained.path.name
    shutil.copytree(trained.path, copy)
    return copy


def test_bundle_with_other_library_versions_is_refused(bundle_copy: Path) -> None:
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["libraries"]["scikit-learn"] = "0.24.0"
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"scikit-learn 0\.24\.0 \(installed: 1\.9\.1\)"):
        load_bundle(bundle_copy)


def test_incomplete_or_altered_bundle_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / "target_priority.joblib").unlink()
    with pytest.raises(BundleError, match=r"target_priority\.joblib is missing"):
        load_bundle(bundle_copy)
    (bundle_copy / "reference.json").write_text("{}")
    with pytest.raises(BundleError, match=r"reference\.json does not match its checksum"):
        load_bundle(bundle_copy)
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"manifest\.json is missing|neither a model bundle"):
        load_bundle(bundle_copy)


def test_predict_cli_names_a_missing_column(trained, synthetic_sample: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(trained.path),
            "--data",
            str(synthetic_sample),
            "--text",
            "subject,nosuchcolumn",
            "--out",
            str(tmp_path / "p.csv"),
        ],
    )
    assert result.exit_code == 2
    assert "nosuchcolumn" in result.output
    assert not (tmp_path / "p.csv").exists()


def test_predict_matches_in_memory_model(trained, synthetic_sample: Path) -> None:
    frame = _frame(synthetic_sample).head(40)
    out = predict_frame(load_bundle(trained.path), frame)
    features = trained.pipeline.transform(frame)
    probs = trained.targets["category"].model.predict_proba(features)
    labels = trained.targets["category"].model.labels
    assert out["label"].tolist() == [labels[i] for i in probs.argmax(axis=1)]
