"""``triage train``: a new bundle from labelled tickets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ticket_triage.data.weak_priority import WeakPriority

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
    tag_extra,
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
    tags: Annotated[
        str | None,
        typer.Option(
            "--tags",
            help="Tag columns (comma-separated, e.g. tag_1,tag_2): train a multi-label tags target too.",
        ),
    ] = None,
    weak_priority: Annotated[
        bool,
        typer.Option(
            "--weak-priority",
            help="Learn priority from labelling functions combined by Snorkel's LabelModel instead of a "
            "priority column; with --priority too, that column only scores the weak labels.",
        ),
    ] = False,
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
        text,
        label=label,
        priority=priority,
        timestamp=timestamp,
        channel=channel,
        tier=tier,
        urgency=urgency,
        extra=tag_extra(tags),
    )
    loaded = load_data(data, columns, require_label=True)
    frame, weak = loaded.frame, None
    if weak_priority:
        from ticket_triage.data.weak_priority import apply_weak_priority

        try:
            frame, weak = apply_weak_priority(frame, seed=settings.seed)
        except ValueError as exc:
            fail(str(exc))
        for line in weak_summary_lines(weak):
            typer.echo(line)
    try:
        result = train_bundle(
            frame,
            settings=settings,
            feature_config=feature_config,
            weighting=weights,
            out_dir=out,
            data_info={
                "data_files": [str(p) for p in data],
                "columns": columns_to_json(columns),
                **({"priority_source": "weak supervision (Snorkel LabelModel)"} if weak else {}),
            },
        )
    except ValueError as exc:
        fail(str(exc))
    lines = write_training_report(result, settings.routing_threshold, settings.conformal_alpha)
    if weak is not None:
        write_weak_report(weak, result.path)
    typer.echo(f"bundle: {result.path}")
    for line in lines:
        typer.echo(line)


def weak_summary_lines(weak: WeakPriority) -> list[str]:
    """What the terminal shows of the weak labels: coverage, each function, agreement with real labels."""
    lines = [f"weak priority: {weak.coverage:.1%} of tickets labelled (the rest train no priority)"]
    for f in weak.functions:
        accuracy = f" accuracy {f['accuracy']:.3f}" if "accuracy" in f else ""
        votes = "/".join(f["votes"]) or "-"
        lines.append(
            f"  {f['name']:<20} votes {votes:<9} coverage {f['coverage']:.3f} overlap {f['overlap']:.3f} "
            f"conflict {f['conflict']:.3f}{accuracy}"
        )
    if weak.agreement is not None and weak.agreement["rows"]:
        a = weak.agreement
        lines.append(
            f"  against the real priority column ({a['rows']} rows): accuracy {a['accuracy']:.4f}, "
            f"Cohen's kappa {a['kappa']:.4f}"
        )
    return lines


def write_weak_report(weak: WeakPriority, bundle: Path) -> None:
    """``evaluation/weak_priority.json`` in the bundle: the functions' figures and the agreement."""
    import json

    from ticket_triage.models.bundle import EVALUATION_DIR

    folder = bundle / EVALUATION_DIR
    folder.mkdir(parents=True, exist_ok=True)
    body = {"coverage": weak.coverage, "functions": weak.functions, "agreement": weak.agreement}
    (folder / "weak_priority.json").write_text(json.dumps(body, indent=2), encoding="utf-8")
