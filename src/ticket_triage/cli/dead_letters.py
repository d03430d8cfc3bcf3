"""``triage dead-letter``: records no database would take, shown and handed back to the service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ticket_triage.cli._common import fail

if TYPE_CHECKING:
    from ticket_triage.audit import DeadLetterStore


dead_letter_app = typer.Typer(
    help="Records no database would take, kept with the reason (the dead-letter store).", no_args_is_help=True
)


def _dead_letter_store() -> DeadLetterStore:
    """The store of the configured database and spool folder (imports stay lazy: the CLI starts fast)."""
    from ticket_triage.audit import DeadLetterStore
    from ticket_triage.config import Settings
    from ticket_triage.review import make_engine

    settings = Settings()
    return DeadLetterStore(make_engine(settings), settings.spool_dir)


@dead_letter_app.command("list")
def dead_letter_list(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest entries of the table to show.")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object a line, payload included.")
    ] = False,
) -> None:
    """Entries of the dead-letter table (newest first), then of the fallback file in the spool folder."""
    import json

    from ticket_triage.audit.isolate import describe

    store = _dead_letter_store()
    try:
        entries = store.table_entries(limit)
    except Exception as exc:  # the database is down: the file may still say something
        typer.secho(f"dead-letter table unavailable: {describe(exc)}", fg=typer.colors.YELLOW, err=True)
        entries = []
    entries += store.file_entries()
    for entry in entries:
        if as_json:
            typer.echo(json.dumps(entry, ensure_ascii=True))
        else:
            key = entry["id"] if entry["store"] == "table" else entry["fingerprint"][:12]
            typer.echo(
                f"{entry['store']}\t{key}\t{entry['failed_at']}\t{entry['kind']}"
                f"\t{entry['prediction_id'] or '-'}\t{entry['reason']}"
            )
    typer.echo(f"{len(entries)} dead letter(s)", err=True)


@dead_letter_app.command("requeue")
def dead_letter_requeue(
    ids: Annotated[list[int] | None, typer.Argument(help="Table ids (see `list`).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every entry of the table.")] = False,
    with_file: Annotated[bool, typer.Option("--file", help="Also every entry of the fallback file.")] = False,
) -> None:
    """Hand entries back to the service (after fixing their cause): they become a spool file that the
    writer adopts and replays; an entry still at fault comes back to the store with its reason."""
    if not ids and not every and not with_file:
        fail("name table ids, or pass --all and/or --file")
    store = _dead_letter_store()
    result = store.requeue(None if every else list(ids or []), with_file=with_file)
    for line in result.skipped:
        typer.echo(f"skipped: {line}", err=True)
    typer.echo(f"requeued {result.spooled} record(s) into {store.directory}")
