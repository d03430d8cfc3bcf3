"""Train a challenger the way the champion was trained, on its data plus the reviewers' corrections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ticket_triage.config import Settings
from ticket_triage.data.loader import LoadReport, load_tickets
from ticket_triage.data.schema import ID, ColumnMap
from ticket_triage.features.config import FeatureConfig
from ticket_triage.feedback import FeedbackError
from ticket_triage.feedback.corrections import (
    MergeReport,
    describe_source,
    merge_corrections,
    read_corrections,
)
from ticket_triage.models.bundle import read_manifest, resolve_bundle_path
from ticket_triage.models.manifest import Manifest, columns_to_json
from ticket_triage.models.target import Target
from ticket_triage.models.training import TrainResult, train_bundle

#: ColumnMap fields besides ``text``, as ``triage train`` records them in the manifest's ``columns``.
SCALAR_FIELDS = ("label", "priority", "timestamp", "channel", "tier", "urgency", "id")


@dataclass
class RetrainResult:
    train: TrainResult
    merge: MergeReport
    columns: ColumnMap
    champion: str
    data_report: LoadReport
    corrections_report: LoadReport


def champion_columns(manifest: Manifest, overrides: dict[str, Any]) -> ColumnMap:
    """The champion's training columns from its manifest; any override given replaces the recorded one."""
    recorded = manifest.columns or ColumnMap(text=())
    text = overrides.get("text") or recorded.text
    fields = {name: overrides.get(name) or getattr(recorded, name) for name in SCALAR_FIELDS}
    if not text or not fields["label"]:
        raise FeedbackError(
            f"bundle {manifest.version} does not record the columns it was trained on; "
            "give them: --text and --label (and --priority, --timestamp, … as for `triage train`)"
        )
    return ColumnMap(text=tuple(text), extra=dict(recorded.extra), **fields)


def retrain(
    champion: Path,
    *,
    data: list[Path] | None,
    corrections: str,
    out_dir: Path,
    settings: Settings,
    overrides: dict[str, Any],
) -> RetrainResult:
    """Merge corrections into the champion's training data and train a challenger that is NOT made live."""
    champion_path = resolve_bundle_path(Path(champion))
    manifest = read_manifest(champion_path)
    loaded = read_corrections(corrections)  # first: a bad source should not wait for the data to load
    if not data:
        data = [Path(p) for p in manifest.data_files or ()]
        missing = [str(p) for p in data if not p.is_file()]
        if not data or missing:
            where = f" ({', '.join(missing)} not found)" if missing else ""
            raise FeedbackError(f"give the original training data with --data{where}")
    columns = champion_columns(manifest, overrides)
    original = load_tickets(data, columns, require_label=True)
    mapped = set(columns.source_columns()) | ({ID} if ID in original.frame.columns else set())
    merged, report = merge_corrections(
        original.frame,
        loaded.frame,
        mapped=mapped,
        known_categories=manifest.targets.get(Target.CATEGORY, ()),
        skipped=loaded.report.dropped,
        read=loaded.report.rows_read,
    )
    # Same configuration as the champion so the comparison measures the data, not a changed setting.
    settings = settings.model_copy(update={"routing_threshold": manifest.routing_threshold})
    result = train_bundle(
        merged,
        settings=settings,
        feature_config=FeatureConfig.model_validate(dict(manifest.feature_config)),
        weighting=manifest.weighting,
        out_dir=out_dir,
        data_info={
            "data_files": [str(p) for p in data],
            "columns": columns_to_json(columns),
            "feedback": {
                "champion": manifest.version,
                "champion_path": str(champion_path),
                "corrections": describe_source(corrections),
                **report.to_dict(),
            },
        },
        mark_live_if_first=False,
    )
    return RetrainResult(
        train=result,
        merge=report,
        columns=columns,
        champion=manifest.version,
        data_report=original.report,
        corrections_report=loaded.report,
    )
