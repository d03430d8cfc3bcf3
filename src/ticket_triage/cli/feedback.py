"""The feedback loop: ``triage retrain`` a challenger with reviewers' corrections, ``compare`` it with
the champion on held-out tickets, ``promote`` it when it is not worse."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ticket_triage.cli._common import (
    ChannelOpt,
    ColumnLabelOpt,
    ColumnTextOpt,
    PriorityOpt,
    TierOpt,
    TimestampOpt,
    ToleranceOpt,
    UrgencyOpt,
    column_overrides,
    fail,
    load_data,
)
from ticket_triage.data.errors import DataError


def retrain(
    model: Annotated[
        Path, typer.Option("--model", help="The champion: a bundle folder, or a models folder with LIVE.")
    ],
    corrections: Annotated[
        str,
        typer.Option(
            "--corrections",
            help="Export of GET /reviews/export (CSV or JSONL), or the review database URL "
            "(sqlite:///var/reviews.db, postgresql+psycopg://…).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Models folder for the challenger (never made live).")],
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", help="The champion's training data; default: the files its manifest names."),
    ] = None,
    text: ColumnTextOpt = None,
    label: ColumnLabelOpt = None,
    priority: PriorityOpt = None,
    timestamp: TimestampOpt = None,
    channel: ChannelOpt = None,
    tier: TierOpt = None,
    urgency: UrgencyOpt = None,
    id_column: Annotated[
        str | None, typer.Option("--id", help="Ticket id column that corrections' ticket_id matches.")
    ] = None,
    bert_epochs: Annotated[
        int | None, typer.Option("--bert-epochs", help="Fine-tuning epochs of the BERT member.")
    ] = None,
) -> None:
    """Train a challenger on the champion's data plus reviewers' corrections (a correction overrides the
    original label of the same ticket). Compare it with `triage compare`, then `triage promote` it."""
    from ticket_triage.config import Settings
    from ticket_triage.feedback import FeedbackError
    from ticket_triage.feedback.retrain import retrain as run_retrain
    from ticket_triage.models.bundle import BundleError
    from ticket_triage.models.evaluation import write_training_report

    settings = Settings()
    if bert_epochs is not None:
        settings = settings.model_copy(update={"bert_epochs": bert_epochs})
    overrides = column_overrides(
        text,
        label=label,
        priority=priority,
        timestamp=timestamp,
        channel=channel,
        tier=tier,
        urgency=urgency,
        id=id_column,
    )
    try:
        result = run_retrain(
            model, data=data, corrections=corrections, out_dir=out, settings=settings, overrides=overrides
        )
    except (BundleError, FeedbackError, DataError, ValueError) as exc:  # ValueError: e.g. one class left
        fail(str(exc))
    for report in (result.data_report, result.corrections_report):
        for line in report.warnings:
            typer.echo(f"data: {line}", err=True)
    typer.echo(f"data: {result.data_report.rows_kept} of {result.data_report.rows_read} original rows used")
    for line in result.merge.lines():
        typer.echo(line)
    lines = write_training_report(result.train, settings.routing_threshold, settings.conformal_alpha)
    typer.echo(f"champion: {result.champion}")
    typer.echo(f"challenger: {result.train.path} (not live; compare it, then promote it)")
    for line in lines:
        typer.echo(line)


def compare(
    champion: Annotated[Path, typer.Argument(help="Champion bundle, or a models folder (its LIVE bundle).")],
    challenger: Annotated[Path, typer.Argument(help="Challenger bundle folder; comparison.json goes there.")],
    data: Annotated[list[Path], typer.Option("--data", help="Labelled held-out tickets neither model saw.")],
    text: ColumnTextOpt = None,
    label: ColumnLabelOpt = None,
    priority: PriorityOpt = None,
    timestamp: TimestampOpt = None,
    channel: ChannelOpt = None,
    tier: TierOpt = None,
    urgency: UrgencyOpt = None,
    tolerance: ToleranceOpt = 0.01,
) -> None:
    """Evaluate champion and challenger on the same held-out data; saves the verdict for `triage promote`."""
    from ticket_triage.feedback import FeedbackError
    from ticket_triage.feedback.compare import COMPARISON_FILE, compare_bundles
    from ticket_triage.feedback.retrain import champion_columns
    from ticket_triage.models.bundle import BundleError, load_bundle, resolve_bundle_path

    try:
        if not (challenger / "manifest.json").exists():
            resolve_bundle_path(challenger)  # names what is wrong with the path, if it can
            fail(f"{challenger} is not a bundle folder; give the challenger bundle itself")
        old, new = load_bundle(champion), load_bundle(challenger)
        if old.path.resolve() == new.path.resolve():
            fail(f"champion and challenger are the same bundle ({new.path})")
        overrides = column_overrides(
            text,
            label=label,
            priority=priority,
            timestamp=timestamp,
            channel=channel,
            tier=tier,
            urgency=urgency,
        )
        columns = champion_columns(old.manifest, overrides)
        loaded = load_data(data, columns, require_label=True)
        comparison = compare_bundles(old, new, loaded.frame, data, tolerance=tolerance)
    except (BundleError, FeedbackError) as exc:
        fail(str(exc))
    saved = comparison.save(new.path / COMPARISON_FILE)
    for line in comparison.lines():
        typer.echo(line)
    typer.echo(f"comparison: {saved}")


def promote(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder to make live in its models folder.")],
    force: Annotated[
        bool, typer.Option("--force", help="Promote even without a passing comparison (recorded).")
    ] = False,
    tolerance: ToleranceOpt = 0.01,
) -> None:
    """Mark a bundle live; refuses unless its comparison against the live bundle shows it is not worse."""
    from ticket_triage.feedback import FeedbackError
    from ticket_triage.feedback.promote import HISTORY_FILE
    from ticket_triage.feedback.promote import promote as run_promote
    from ticket_triage.models.bundle import BundleError

    try:
        result = run_promote(bundle, tolerance=tolerance, force=force)
    except (BundleError, FeedbackError) as exc:
        fail(str(exc))
    if result.already_live:
        typer.echo(f"{result.bundle} is already live; nothing changed")
        return
    if result.forced:
        for reason in result.overridden:
            typer.secho(f"forced past: {reason}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"live: {result.bundle} (was {result.previous or 'none'})")
    typer.echo(f"history: {bundle.absolute().parent / HISTORY_FILE}")
