"""``triage drift-report``: how far a ticket file has moved from what the bundle was trained on."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from ticket_triage.cli._common import (
    ChannelOpt,
    ColumnTextOpt,
    DataOpt,
    ModelOpt,
    TierOpt,
    TimestampOpt,
    UrgencyOpt,
    column_map,
    column_overrides,
    fail,
    load_data,
)


def drift_report(
    model: ModelOpt,
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="The HTML report to write.")],
    text: ColumnTextOpt = None,
    timestamp: TimestampOpt = None,
    channel: ChannelOpt = None,
    tier: TierOpt = None,
    urgency: UrgencyOpt = None,
) -> None:
    """Evidently data-drift report of a ticket file against the bundle's training sample, plus PSI."""
    from ticket_triage.feedback import FeedbackError
    from ticket_triage.feedback.retrain import champion_columns
    from ticket_triage.models.bundle import BundleError, load_bundle
    from ticket_triage.monitoring.drift import compute_drift
    from ticket_triage.monitoring.evidently_report import (
        ReportUnavailableError,
        drift_report_html,
        reference_frame,
        rows_of_frame,
        window_frame,
    )

    try:
        bundle = load_bundle(model)
    except BundleError as exc:
        fail(str(exc))
    if text:
        columns = column_map(text, timestamp=timestamp, channel=channel, tier=tier, urgency=urgency)
    else:
        overrides = column_overrides(None, timestamp=timestamp, channel=channel, tier=tier, urgency=urgency)
        try:
            columns = champion_columns(bundle.manifest, overrides)
        except FeedbackError as exc:
            fail(f"{exc} (here only --text is needed)")
    # Drift compares inputs and answers: the file needs no labels.
    loaded = load_data(data, dataclasses.replace(columns, label=None, priority=None), require_label=False)
    rows = rows_of_frame(bundle, loaded.frame)
    summary = compute_drift(bundle.reference, rows, bundle.version)
    try:
        html = drift_report_html(reference_frame(bundle.reference), window_frame(rows))
    except ReportUnavailableError as exc:
        fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    worst = sorted(summary.features.items(), key=lambda kv: -kv[1])[:5]

    def three(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    typer.echo(
        f"PSI on {summary.window} tickets: prediction {three(summary.prediction)}, confidence "
        f"{three(summary.confidence)}; features over 0.1: {summary.over.get('0.1')}, over 0.25: "
        f"{summary.over.get('0.25')} of {len(summary.features)}"
    )
    typer.echo("highest: " + ", ".join(f"{name} {value:.3f}" for name, value in worst))
    typer.echo(f"report: {out}")
