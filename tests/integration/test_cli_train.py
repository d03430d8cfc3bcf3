"""`triage train` through the CLI on real BANKING77 rows, and its errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ticket_triage.cli import app
from ticket_triage.models.bundle import load_bundle

runner = CliRunner()
LIGHT_FEATURES = """
[embeddings]
enabled = false
[entities]
enabled = false
[topics]
enabled = false
[tfidf]
svd_components = 16
"""


@pytest.fixture(scope="module")
def banking_sample(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = pd.read_csv(datasets / "banking77_train.csv")
    five = frame[frame["category"].isin(sorted(frame["category"].unique())[:5])]
    path = tmp_path_factory.mktemp("banking") / "banking_sample.csv"
    five.groupby("category").head(40).to_csv(path, index=False)
    return path


def test_train_cli_writes_a_live_bundle(
    banking_sample: Path, tmp_path: Path, fast_training_env: None
) -> None:
    features = tmp_path / "features.toml"
    features.write_text(LIGHT_FEATURES)
    models = tmp_path / "models"
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(banking_sample),
            "--text",
            "text",
            "--label",
            "category",
            "--out",
            str(models),
            "--features",
            str(features),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "bundle: " in result.output and "accuracy" in result.output
    bundle = load_bundle(models)
    assert len(bundle.targets["category"].labels) == 5
    assert "priority" not in bundle.targets
    assert (models / "LIVE").read_text().strip() == bundle.path.name


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--text", "nosuch", "--label", "category"], "nosuch"),
        (["--text", "text", "--label", "nolabel"], "nolabel"),
        (["--text", "text,", "--label", "category"], "--text"),
    ],
)
def test_train_cli_names_what_is_wrong(
    banking_sample: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    result = runner.invoke(app, ["train", "--data", str(banking_sample), *args, "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert expected in result.output
    assert not (tmp_path / "m").exists()


def test_train_cli_rejects_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("text,category\n")
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(empty),
            "--text",
            "text",
            "--label",
            "category",
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert result.exit_code == 2 and "empty.csv" in result.output
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(tmp_path / "nope.csv"),
            "--text",
            "text",
            "--label",
            "category",
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert result.exit_code == 2 and "nope.csv" in result.output


def test_weak_priority_trains_a_priority_target_from_labelling_functions(
    datasets: Path, tmp_path: Path, fast_training_env: None
) -> None:
    frame = pd.read_csv(datasets / "synthetic_tickets_v5_train.csv", dtype=str, keep_default_na=False)
    data = tmp_path / "tickets.csv"
    frame.head(400).to_csv(data, index=False)
    features = tmp_path / "features.toml"
    features.write_text(LIGHT_FEATURES)
    models = tmp_path / "models"
    args = ["train", "--data", str(data), "--text", "subject,body", "--label", "queue", "--out", str(models)]
    result = runner.invoke(
        app, [*args, "--features", str(features), "--weak-priority", "--priority", "priority"]
    )
    assert result.exit_code == 0, result.output
    assert "weak priority: " in result.output and "Cohen's kappa" in result.output
    bundle = load_bundle(models)
    assert set(bundle.targets["priority"].labels) <= {"low", "medium", "high"}
    assert bundle.manifest.extra["priority_source"].startswith("weak supervision")
    report = json.loads((bundle.path / "evaluation" / "weak_priority.json").read_text())
    assert len(report["functions"]) == 10 and 0 < report["coverage"] <= 1
    assert report["agreement"]["rows"] > 0 and -1 <= report["agreement"]["kappa"] <= 1
