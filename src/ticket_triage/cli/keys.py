"""``triage keys``: the API keys the service accepts."""

from __future__ import annotations

from typing import Annotated

import typer

from ticket_triage.cli._common import fail

keys_app = typer.Typer(help="Manage the API keys the service accepts.", no_args_is_help=True)


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Option("--name", help="Who uses the key (a reviewer's name, 'helpdesk', …).")],
    role: Annotated[str, typer.Option("--role", help="predict, review or admin.")],
) -> None:
    """Add a key to the key file (only its hash is stored) and print it once."""
    from ticket_triage.config import Settings
    from ticket_triage.serving.auth import KeySpecError, Role, add_key

    try:
        key = add_key(Settings().api_key_file, name, Role(role.lower()))
    except ValueError as exc:  # KeySpecError, or a role that is not one of the three
        fail(
            str(exc)
            if isinstance(exc, KeySpecError)
            else f"--role must be predict, review or admin, not {role!r}"
        )
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """Names and roles of the configured keys (never the keys)."""
    from ticket_triage.config import Settings
    from ticket_triage.serving.auth import KeySpecError, KeyStore

    settings = Settings()
    try:
        store = KeyStore.load(env_spec=settings.api_keys, key_file=settings.api_key_file)
    except KeySpecError as exc:
        fail(str(exc))
    for name, role in store.names():
        typer.echo(f"{name}\t{role}")
