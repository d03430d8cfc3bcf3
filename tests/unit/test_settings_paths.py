"""Default paths: folders under the working directory (as `make run` uses them from the checkout's root),
the default feature config from inside the installed package."""

from __future__ import annotations

from pathlib import Path

import pytest

import ticket_triage
from ticket_triage.config import Settings
from ticket_triage.features.config import FeatureConfig

ROOT = Path(__file__).resolve().parents[2]
VAR_FILES = {
    "api_key_file": "api_keys.json",
    "cache_signing_key_file": "cache_signing.key",
    "onnx_dir": "onnx",
    "database_file": "review.sqlite3",
    "spool_dir": "spool",
}


@pytest.fixture(autouse=True)
def _no_path_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("models_dir", "var_dir", "feature_config", *VAR_FILES):
        monkeypatch.delenv(f"TRIAGE_{name.upper()}", raising=False)


def test_folders_default_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.models_dir == tmp_path / "models"
    assert settings.var_dir == tmp_path / "var"
    for name, file in VAR_FILES.items():
        assert getattr(settings, name) == tmp_path / "var" / file, name


def test_from_the_checkout_root_the_paths_are_the_ones_make_run_always_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    settings = Settings()
    assert settings.models_dir == ROOT / "models"
    assert settings.api_key_file == ROOT / "var" / "api_keys.json"
    assert settings.database_file == ROOT / "var" / "review.sqlite3"


def test_one_var_dir_moves_every_state_file_and_each_can_still_be_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_VAR_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TRIAGE_SPOOL_DIR", str(tmp_path / "disk2" / "spool"))
    settings = Settings(api_key_file=tmp_path / "secrets" / "keys.json")
    assert settings.onnx_dir == tmp_path / "state" / "onnx"
    assert settings.database_file == tmp_path / "state" / "review.sqlite3"
    assert settings.spool_dir == tmp_path / "disk2" / "spool"
    assert settings.api_key_file == tmp_path / "secrets" / "keys.json"


def test_the_default_feature_config_ships_inside_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing of the checkout is reachable from here
    path = Settings().feature_config
    assert path.parent == Path(ticket_triage.__file__).parent
    config = FeatureConfig.from_toml(path)
    assert config.embeddings.fine_tune and config.tfidf.svd_components == 128
