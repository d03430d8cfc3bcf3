"""``triage demo``: generated tickets and a model trained on them, for a first run without data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ticket_triage.cli.train import train


def demo(
    out: Annotated[Path, typer.Option("--out", help="Models folder.")] = Path("models"),
    data: Annotated[Path, typer.Option("--data", help="Where the generated demo CSV goes.")] = Path(
        "data/demo_tickets.csv"
    ),
    rows: Annotated[int, typer.Option("--rows", min=200, help="Demo tickets to generate.")] = 3000,
    bert_epochs: Annotated[
        int, typer.Option("--bert-epochs", help="Sentence-encoder fine-tuning epochs.")
    ] = 2,
) -> None:
    """Generate synthetic demo tickets and train on them unless a live model already exists."""
    from ticket_triage.data.demo import write_demo_csv
    from ticket_triage.models.bundle import LIVE_POINTER

    if (out / LIVE_POINTER).exists():
        live = out / (out / LIVE_POINTER).read_text().strip()
        typer.echo(f"live model: {live} (delete {out / LIVE_POINTER} to retrain)")
        return
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        write_demo_csv(data, rows, seed=7)
        typer.echo(f"generated {rows} synthetic demo tickets in {data}")
    train(
        data=[data],
        text="subject,body",
        label="category",
        out=out,
        priority="priority",
        timestamp="created_at",
        channel="channel",
        tier="customer_tier",
        urgency=None,
        weights="learned",
        features=None,
        bert_epochs=bert_epochs,
    )
