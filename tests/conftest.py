"""Shared fixtures: the real datasets beside the checkout and one small model trained on real tickets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRIAGE_DATASETS", ROOT.parent / "shared" / "datasets"))

#: Small but real training settings: every member trains, just briefly, so the suite stays in minutes.
FAST_TRAINING_ENV = {
    "TRIAGE_BERT_EPOCHS": "1",
    "TRIAGE_BERT_MAX_LENGTH": "64",
    "TRIAGE_XGBOOST_ROUNDS": "40",
    "TRIAGE_LIGHTGBM_ROUNDS": "40",
    "TRIAGE_FOREST_TREES": "60",
}


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not (DATASETS / "README.md").exists():
        pytest.fail(f"real datasets not found at {DATASETS}: CI checks out ../shared beside the project")
    return DATASETS


@pytest.fixture(scope="session")
def fast_training_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in FAST_TRAINING_ENV}
    os.environ.update(FAST_TRAINING_ENV)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def synthetic_sample(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 500 real rows of the synthetic v5 tickets (English and German; queue and priority), with ids."""
    frame = pd.read_csv(datasets / "synthetic_tickets_v5_train.csv", dtype=str, keep_default_na=False)
    share = 500 / len(frame)
    sample = pd.concat(g.head(max(8, round(len(g) * share))) for _, g in frame.groupby("queue"))
    sample = sample.sample(frac=1.0, random_state=3).reset_index(drop=True)
    sample.insert(0, "id", [f"T{i:05d}" for i in range(len(sample))])
    path = tmp_path_factory.mktemp("data") / "synthetic_sample.csv"
    sample.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def trained(synthetic_sample: Path, fast_training_env: None, tmp_path_factory: pytest.TempPathFactory):
    """A bundle trained in-process on the real sample; the TrainResult keeps the in-memory models."""
    from ticket_triage.config import Settings
    from ticket_triage.data.loader import load_tickets
    from ticket_triage.data.schema import ColumnMap
    from ticket_triage.features.config import FeatureConfig
    from ticket_triage.models.evaluation import write_training_report
    from ticket_triage.models.training import train_bundle

    columns = ColumnMap(text=("subject", "body"), label="queue", priority="priority", id="id")
    frame = load_tickets([synthetic_sample], columns, require_label=True).frame
    settings = Settings()
    result = train_bundle(
        frame,
        settings=settings,
        feature_config=FeatureConfig.from_toml(settings.feature_config),
        optimize=True,
        out_dir=tmp_path_factory.mktemp("models"),
        data_info={"data_files": [str(synthetic_sample)]},
    )
    write_training_report(result, settings.routing_threshold)
    return result
