"""The typed manifest: a real format-2 manifest.json reads and writes back unchanged; bad fields are named."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ticket_triage.data.schema import ColumnMap
from ticket_triage.models.bundle import MANIFEST, load_bundle, read_manifest, save_bundle
from ticket_triage.models.errors import BundleError
from ticket_triage.models.manifest import FORMAT_VERSION, Manifest
from ticket_triage.models.target import Target

#: manifest.json of a bundle trained by `triage train` before the manifest was typed (400 demo tickets).
FORMAT_2_FILE = Path(__file__).parent / "data" / "manifest_format2.json"


@pytest.fixture
def raw() -> dict[str, Any]:
    return json.loads(FORMAT_2_FILE.read_text(encoding="utf-8"))


def test_a_format_2_manifest_reads_into_typed_fields(raw: dict[str, Any]) -> None:
    manifest = Manifest.from_json(raw)
    assert manifest.format_version == FORMAT_VERSION == 2
    assert manifest.version == raw["version"]
    assert manifest.trained_at == datetime.fromisoformat(raw["trained_at"])
    assert manifest.trained_at.utcoffset() == UTC.utcoffset(None)
    assert list(manifest.targets) == [Target.CATEGORY, Target.PRIORITY]
    assert manifest.targets[Target.PRIORITY] == ("critical", "high", "low", "medium")
    assert manifest.routing_threshold == 0.7
    assert manifest.rows == {"train": 320, "validation": 40, "test": 40}
    assert manifest.feature_names == tuple(raw["feature_names"])
    assert manifest.columns == ColumnMap(
        text=("subject", "body"),
        label="category",
        priority="priority",
        timestamp="created_at",
        channel="channel",
        tier="customer_tier",
    )
    assert manifest.data_files == ("/tmp/i12m/demo.csv",)
    assert manifest.feedback is None and manifest.extra == {}


def test_a_format_2_manifest_writes_back_byte_for_byte(raw: dict[str, Any]) -> None:
    written = Manifest.from_json(raw).to_json()
    assert written == raw
    assert list(written) == list(raw)
    assert json.dumps(written, indent=1) == FORMAT_2_FILE.read_text(encoding="utf-8")


def test_unknown_keys_are_kept_and_written_back(raw: dict[str, Any]) -> None:
    raw["labelled_by"] = {"team": "ops", "rounds": [1, 2]}
    manifest = Manifest.from_json(raw)
    assert manifest.extra == {"labelled_by": {"team": "ops", "rounds": [1, 2]}}
    assert manifest.to_json() == raw


def test_optional_fields_left_out_stay_out(raw: dict[str, Any]) -> None:
    for key in ("data_files", "columns"):
        del raw[key]
    manifest = Manifest.from_json(raw)
    assert manifest.columns is None and manifest.data_files is None
    assert manifest.to_json() == raw


@pytest.mark.parametrize("name", ["version", "trained_at", "targets", "rows", "feature_config", "files"])
def test_a_missing_field_is_named(raw: dict[str, Any], name: str) -> None:
    del raw[name]
    with pytest.raises(BundleError, match=rf"manifest field '{name}' is missing"):
        Manifest.from_json(raw)


def _set(raw: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        raw = raw[key]
    raw[last] = value


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("routing_threshold", "0.7", r"'routing_threshold' must be a number, got '0\.7' \(str\)"),
        ("routing_threshold", True, r"'routing_threshold' must be a number, got True \(bool\)"),
        ("cross_fitting_folds", 2.0, r"'cross_fitting_folds' must be an integer, got 2\.0 \(float\)"),
        ("rows.train", "320", r"'rows\.train' must be an integer"),
        ("libraries.numpy", 2, r"'libraries\.numpy' must be a string"),
        ("feature_names", "tfidf_0", r"'feature_names' must be a list of strings"),
        ("targets.category", ["billing", 3], r"'targets\.category' must be a list of strings"),
        ("trained_at", "yesterday", r"'trained_at' must be an ISO 8601 time"),
        ("trained_at", "2026-12-01T15:21:31", r"'trained_at' must be an ISO 8601 time with its UTC offset"),
        ("columns.text", "subject", r"'columns\.text' must be a list of strings"),
        ("columns.label", 7, r"'columns\.label' must be a string"),
        ("feedback", ["not", "an", "object"], r"'feedback' must be an object"),
    ],
)
def test_a_wrong_typed_field_is_named(raw: dict[str, Any], path: str, value: Any, message: str) -> None:
    _set(raw, path, value)
    with pytest.raises(BundleError, match=message):
        Manifest.from_json(raw)


def test_an_unknown_target_or_column_key_is_named(raw: dict[str, Any]) -> None:
    bad = copy.deepcopy(raw)
    bad["targets"]["urgency"] = ["low", "high"]
    with pytest.raises(BundleError, match=r"'targets' names an unknown target 'urgency'"):
        Manifest.from_json(bad)
    raw["columns"]["queue"] = "team"
    with pytest.raises(BundleError, match=r"'columns' has unknown keys: queue"):
        Manifest.from_json(raw)


@pytest.mark.parametrize("found", [1, 3, None, True])
def test_another_format_version_is_refused_before_any_field(raw: dict[str, Any], found: Any) -> None:
    raw = {"format_version": found} if found is not None else {}
    with pytest.raises(BundleError, match=rf"format version {found!r}; this ticket-triage reads format 2"):
        Manifest.from_json(raw)


def test_read_manifest_names_the_bundle(raw: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "2026-12-01T15-21-25_a2be14"
    folder.mkdir()
    shutil.copy(FORMAT_2_FILE, folder / MANIFEST)
    assert read_manifest(folder) == Manifest.from_json(raw)
    del raw["weighting"]
    (folder / MANIFEST).write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(BundleError, match=r"^bundle 2026-12-01T15-21-25_a2be14: manifest field 'weighting'"):
        read_manifest(folder)


@dataclass
class _Labelled:
    """Stands in for a TargetModel: save_bundle pickles it and reads only its labels."""

    labels: list[str]


def test_save_bundle_writes_a_manifest_that_loads_as_written(raw: dict[str, Any], tmp_path: Path) -> None:
    info = {key: raw[key] for key in list(raw)[7:]} | {"labelled_by": "ops"}
    targets = {"category": _Labelled(["billing", "security"])}
    path = save_bundle(
        tmp_path, pipeline=[1, 2], targets=targets, reference={}, reference_pca=None, info=info
    )
    written = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    assert list(written)[:7] == list(raw)[:7]
    assert written["targets"] == {"category": ["billing", "security"]} and written["labelled_by"] == "ops"
    bundle = load_bundle(path)
    assert bundle.manifest == Manifest.from_json(written)
    assert bundle.manifest.to_json() == written
    assert bundle.version == path.name and bundle.threshold == 0.7
    assert bundle.targets[Target.CATEGORY].labels == ["billing", "security"]


def test_save_bundle_refuses_info_that_would_not_load(raw: dict[str, Any], tmp_path: Path) -> None:
    info = {key: raw[key] for key in list(raw)[7:]} | {"rows": {"train": "many"}}
    with pytest.raises(BundleError, match=r"'rows\.train' must be an integer"):
        save_bundle(
            tmp_path,
            pipeline=[1],
            targets={"category": _Labelled(["a", "b"])},
            reference={},
            reference_pca=None,
            info=info,
        )
