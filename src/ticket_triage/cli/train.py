"""``triage train``: a new bundle from labelled tickets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ticket_triage.cli._common import (
    ChannelOpt,
    DataOpt,
    PriorityOpt,
    TextOpt,
    TierOpt,
    TimestampOpt,
    UrgencyOpt,
    column_map,
    fail,
    load_data,
)


def train(
    data: DataOpt,
    text: TextOpt,
    label: Annotated[str, typer.Option("--label", help="Category column (the queue/team).")],
    out: Annotated[
        Path, typer.Option("--out", help="Models folder; the bundle is written to a new version in it.")
    ],
    priority: PriorityOpt = None,
    timestamp: TimestampOpt = None,
    channel: ChannelOpt = None,
    tier: TierOpt = None,
    urgency: UrgencyOpt = None,
    weights: Annotated[
        str,
        typer.Option(
            "--weights",
            help="learned: fitted on out-of-fold predictions (best); seed: the published weights.",
        ),
    ] = "learned",
    features: Annotated[Path | None, typer.Option("--features", help="Feature config TOML.")] = None,
    bert_epochs: Annotated[
        int | None, typer.Option("--bert-epochs", help="Fine-tuning epochs of the sentence encoder.")
    ] = None,
) -> None:
    """Train the five-member ensemble (and a priority model when --priority is given) into a new bundle."""
    from ticket_triage.models.training import WEIGHTINGS

    if weights not in WEIGHTINGS:
        fail(f"--weights must be one of {', '.join(WEIGHTINGS)}, got {weights!r}")
    from ticket_triage.config import Settings
    from ticket_triage.features.config import FeatureConfig
    from ticket_triage.models.evaluation import write_training_report
    from ticket_triage.models.manifest import columns_to_json
    from ticket_triage.models.training import train_bundle

    settings = Settings()
    if bert_epochs is not None:
        settings = settings.model_copy(update={"bert_epochs": bert_epochs})
    try:
        feature_config = FeatureConfig.from_toml(features or settings.feature_config)
    except ValueError as exc:
        fail(str(exc))
    columns = column_map(
        text, label=label, priority=priority, timestamp=timestamp, channel=channel, tier=tier, urgency=urgency
    )
    loaded = load_data(data, columns, require_label=True)
    try:
        result = train_bundle(
            loaded.frame,
            settings=settings,
            feature_config=feature_config,
            weighting=weights,
            out_dir=out,
            data_info={
                "data_files": [str(p) for p in data],
                "columns": columns_to_json(columns),
            },
        )
    except ValueError as exc:
        fail(str(exc))
    lines = write_training_report(result, settings.routing_threshold, settings.conformal_alpha)
    typer.echo(f"bundle: {result.path}")
    for line in lines:
        typer.echo(line)
