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

#: Real training settings but for a short BERT fine-tune (its cost dominates); trees are cheap at this size.
FAST_TRAINING_ENV = {
    "TRIAGE_BERT_EPOCHS": "1",
    "TRIAGE_BERT_MAX_LENGTH": "64",
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
def synthetic_split(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The 1,497 real synthetic-v5 tickets (English and German; queue and priority), shuffled, with ids:
    1,197 to train on and 300 the model never sees, for prediction, evaluation and behaviour checks."""
    frame = pd.read_csv(datasets / "synthetic_tickets_v5_train.csv", dtype=str, keep_default_na=False)
    frame = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    frame.insert(0, "id", [f"T{i:05d}" for i in range(len(frame))])
    folder = tmp_path_factory.mktemp("data")
    frame.iloc[300:].to_csv(folder / "synthetic_train.csv", index=False)
    frame.iloc[:300].to_csv(folder / "synthetic_sample.csv", index=False)
    return folder / "synthetic_train.csv", folder / "synthetic_sample.csv"


@pytest.fixture(scope="session")
def synthetic_tickets(synthetic_split: tuple[Path, Path]) -> Path:
    return synthetic_split[0]


@pytest.fixture(scope="session")
def synthetic_sample(synthetic_split: tuple[Path, Path]) -> Path:
    return synthetic_split[1]


@pytest.fixture(scope="session")
def trained(synthetic_tickets: Path, fast_training_env: None, tmp_path_factory: pytest.TempPathFactory):
    """A bundle trained in-process on the real tickets; the TrainResult keeps the in-memory models."""
    from ticket_triage.config import Settings
    from ticket_triage.data.loader import load_tickets
    from ticket_triage.data.schema import ColumnMap
    from ticket_triage.features.config import FeatureConfig
    from ticket_triage.models.evaluation import write_training_report
    from ticket_triage.models.tags import tag_columns
    from ticket_triage.models.training import train_bundle

    tags = tag_columns([f"tag_{i}" for i in range(1, 9)])
    columns = ColumnMap(text=("subject", "body"), label="queue", priority="priority", id="id", extra=tags)
    frame = load_tickets([synthetic_tickets], columns, require_label=True).frame
    settings = Settings()
    result = train_bundle(
        frame,
        settings=settings,
        feature_config=FeatureConfig.from_toml(settings.feature_config),
        out_dir=tmp_path_factory.mktemp("models"),
        data_info={"data_files": [str(synthetic_tickets)]},
    )
    write_training_report(result, settings.routing_threshold, settings.conformal_alpha)
    return result
