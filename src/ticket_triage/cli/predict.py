"""``triage predict`` and ``triage evaluate``: a bundle applied to a ticket file."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import pandas as pd

    from ticket_triage.config import Settings
    from ticket_triage.models.bundle import Bundle

from ticket_triage.cli._common import (
    ChannelOpt,
    IdOpt,
    ModelOpt,
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


class RoutingRule(StrEnum):
    """The choices of ``--routing-rule`` (routing.RULES)."""

    threshold = "threshold"
    singleton = "singleton"
    both = "both"


def predict(
    model: ModelOpt,
    data: Annotated[Path, typer.Option("--data", help="Tickets to classify.")],
    text: TextOpt,
    out: Annotated[Path, typer.Option("--out", help="Output CSV, one row per input row in input order.")],
    timestamp: TimestampOpt = None,
    channel: ChannelOpt = None,
    tier: TierOpt = None,
    urgency: UrgencyOpt = None,
    id_column: IdOpt = None,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", min=0.0, max=1.0, help="Routing threshold (default: the bundle's)."),
    ] = None,
    rule: Annotated[
        RoutingRule | None,
        typer.Option("--routing-rule", help="threshold, singleton or both (default: the bundle's choice)."),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            "--alpha", help="Conformal miscoverage, strictly between 0 and 1 (default: the bundle's)."
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Add an `explanation` column (JSON): the words behind the label and the runner-up. Costs "
            "TRIAGE_EXPLAIN_MAX_EVALS model passes' worth of rows per ticket.",
        ),
    ] = False,
) -> None:
    """Classify tickets and write label, confidence, prediction set, route, priority and probabilities.

    Threshold, rule and alpha: the option, else the TRIAGE_* setting when set, else the bundle's own.
    """
    from ticket_triage.config import Settings
    from ticket_triage.models.bundle import BundleError, load_bundle
    from ticket_triage.models.predictor import predict_frame
    from ticket_triage.routing import RoutingPolicy

    settings = Settings()
    configured = RoutingPolicy.from_settings(settings)
    try:
        routing = RoutingPolicy(
            configured.override if threshold is None else threshold,
            configured.rule_override if rule is None else rule.value,
            configured.alpha_override if alpha is None else alpha,
        )
        bundle = load_bundle(model)
        bundle.check_routing(routing)
    except (BundleError, ValueError) as exc:
        fail(str(exc))
    columns = column_map(text, timestamp=timestamp, channel=channel, tier=tier, urgency=urgency, id=id_column)
    loaded = load_data([data], columns, require_label=False)
    result = predict_frame(bundle, loaded.frame, routing)
    if explain:
        result["explanation"] = explanations(bundle, loaded.frame, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(out, index=False)
    auto = int((result["route"] == "auto").sum())
    typer.echo(
        f"wrote {len(result)} predictions to {out} ({auto} auto-routed, {len(result) - auto} to review)"
    )


def explanations(bundle: Bundle, frame: pd.DataFrame, settings: Settings) -> list[str]:
    """One JSON cell per row: per label (predicted, runner-up) its probability and weighted words, each
    with its character span in the row's joined text."""
    from tqdm import tqdm

    from ticket_triage.models.predictor import explain_row

    cells = []
    for i in tqdm(range(len(frame)), desc="explaining", unit="ticket", file=sys.stderr, disable=None):
        evidence = explain_row(
            bundle,
            frame.iloc[[i]],
            top_words=settings.explain_top_words,
            max_evals=settings.explain_max_evals,
        )
        cells.append(json.dumps([asdict(e) for e in evidence], ensure_ascii=False))
    return cells


def evaluate(
    model: ModelOpt,
    data: Annotated[Path, typer.Option("--data", help="Labelled tickets the model has not seen.")],
    text: TextOpt,
    label: Annotated[str, typer.Option("--label", help="Category column.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md, report.json and plots.")],
    priority: PriorityOpt = None,
    timestamp: TimestampOpt = None,
    channel: ChannelOpt = None,
    tier: TierOpt = None,
    urgency: UrgencyOpt = None,
    tags: Annotated[
        str | None, typer.Option("--tags", help="Tag columns, to score a bundle trained with --tags.")
    ] = None,
) -> None:
    """Evaluate a bundle on labelled data: every member, the ensemble and the LinearSVC baseline."""
    from ticket_triage.models.bundle import BundleError, load_bundle
    from ticket_triage.models.evaluation import evaluate_bundle

    try:
        bundle = load_bundle(model)
    except BundleError as exc:
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
    loaded = load_data([data], columns, require_label=True)
    for line in evaluate_bundle(bundle, loaded.frame, out):
        typer.echo(line)
    typer.echo(f"report: {out / 'report.md'}")
