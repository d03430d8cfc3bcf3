"""What every ``triage`` command shares: the column options, and how bad input ends a command (a red
``error:`` line and exit code 2, never a traceback)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ticket_triage.data.errors import DataError
from ticket_triage.data.loader import LoadResult, load_tickets, parse_columns
from ticket_triage.data.schema import ColumnMap

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DataOpt = Annotated[
    list[Path], typer.Option("--data", help="CSV, Parquet or JSON Lines file; repeat for more.")
]
TextOpt = Annotated[str, typer.Option("--text", help="Text column(s), comma-separated, e.g. subject,body.")]
PriorityOpt = Annotated[str | None, typer.Option("--priority", help="Priority column (second target).")]
TimestampOpt = Annotated[str | None, typer.Option("--timestamp", help="Ticket creation time column.")]
ChannelOpt = Annotated[str | None, typer.Option("--channel", help="Channel column (email, chat, …).")]
TierOpt = Annotated[str | None, typer.Option("--tier", help="Customer tier column.")]
UrgencyOpt = Annotated[str | None, typer.Option("--urgency", help="Declared urgency column.")]
IdOpt = Annotated[
    str | None, typer.Option("--id", help="ID column copied to the output (default: 'id' if present).")
]
ModelOpt = Annotated[
    Path, typer.Option("--model", help="Bundle folder, or a models folder with a LIVE file.")
]
# The commands that start from a trained bundle default to the columns its manifest records.
ColumnTextOpt = Annotated[
    str | None, typer.Option("--text", help="Text column(s); default: the champion's training columns.")
]
ColumnLabelOpt = Annotated[
    str | None, typer.Option("--label", help="Category column; default: the champion's.")
]
ToleranceOpt = Annotated[
    float,
    typer.Option(
        "--tolerance",
        min=0.0,
        max=1.0,
        help="How far below the champion's category accuracy or macro-F1 still counts as not worse.",
    ),
]


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def column_map(text: str, **fields: str | None) -> ColumnMap:
    try:
        return ColumnMap(text=parse_columns(text), **fields)
    except ValueError as exc:
        fail(f"--text: {exc}")


def column_overrides(text: str | None, **fields: str | None) -> dict[str, object]:
    """Column options given on the command line; the rest come from the champion's manifest."""
    out: dict[str, object] = {k: v for k, v in fields.items() if v}
    if text:
        try:
            out["text"] = parse_columns(text)
        except ValueError as exc:
            fail(f"--text: {exc}")
    return out


def load_data(paths: list[Path], columns: ColumnMap, require_label: bool) -> LoadResult:
    try:
        result = load_tickets(paths, columns, require_label=require_label)
    except DataError as exc:
        fail(str(exc))
    for line in result.report.warnings:
        typer.echo(f"data: {line}", err=True)
    typer.echo(f"data: {result.report.rows_kept} of {result.report.rows_read} rows used", err=True)
    return result


def tag_extra(tags: str | None) -> dict[str, str]:
    """The loader's extra columns for ``--tags`` (models/tags.py names them)."""
    from ticket_triage.models.tags import tag_columns

    if not tags:
        return {}
    try:
        return tag_columns(parse_columns(tags))
    except ValueError as exc:
        fail(f"--tags: {exc}")
