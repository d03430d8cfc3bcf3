"""``triage serve``: the HTTP API, refused up front when the bundle or the keys would not do."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from ticket_triage.cli._common import ModelOpt, fail


def serve(
    model: ModelOpt = Path("models"),
    host: Annotated[str | None, typer.Option("--host", help="Interface (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="Port (default 8000).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Worker processes.")] = None,
    create_keys: Annotated[
        bool, typer.Option("--create-keys", help="Create a local API key file if there are no keys at all.")
    ] = False,
) -> None:
    """Serve the HTTP API (predict, health, metrics, admin) on the given model."""
    from ticket_triage.config import Settings
    from ticket_triage.models.bundle import BundleError, check_bundle, read_manifest, resolve_bundle_path
    from ticket_triage.serving.auth import KeySpecError, first_run_path, startup_key_store
    from ticket_triage.serving.server import cache_line, run_server

    overrides = {"models_dir": model.resolve(), "host": host, "port": port, "workers": workers}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    try:  # fail here, with the reason, rather than in every worker
        bundle_path = resolve_bundle_path(settings.models_dir)
        check_bundle(bundle_path, read_manifest(bundle_path))
    except BundleError as exc:
        fail(f"{exc} (train one with `triage train` or `make run`)")
    routes = _checked_route_map(settings, bundle_path)
    try:
        keys, created = startup_key_store(
            env_spec=settings.api_keys,
            key_file=settings.api_key_file,
            auth_disabled=settings.auth_disabled,
            create_if_missing=create_keys,
        )
    except KeySpecError as exc:
        fail(str(exc))
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f"Ticket Triage serving {bundle_path.name} on {base}")
    typer.echo(f"  API docs:  {base}/docs")
    if settings.auth_disabled:
        typer.secho(
            "  API keys:  none (TRIAGE_AUTH_DISABLED is set; development only)", fg=typer.colors.YELLOW
        )
    else:
        sources = f"{settings.api_key_file}{' + TRIAGE_API_KEYS' if settings.api_keys else ''}"
        typer.echo(f"  API keys:  {len(keys)} in {sources}")
    first_run = first_run_path(settings.api_key_file)
    if created or first_run.exists():
        typer.echo(f"  new keys:  {first_run} (copy them, then delete that file)")
    if routes is not None:
        typer.echo(f"  route map: {routes.source} ({sum(map(len, routes.tables.values()))} labels mapped)")
    for system in ("zendesk", "freshdesk", "jira", "zammad"):
        if getattr(settings, f"{system}_webhook_secret") is not None:
            typer.echo(f"  webhook:   {base}/integrations/{system}")
    if settings.notify_url:
        target = urlsplit(settings.notify_url)  # no credentials or query on the terminal
        typer.echo(f"  notifying: {target.scheme}://{target.hostname}{target.path}")
    typer.echo(cache_line(settings))  # the Redis URL with its password as ***
    run_server(settings)


def _checked_route_map(settings: Any, bundle_path: Path) -> Any:
    """The route map read and checked against the bundle's labels before any worker starts."""
    from ticket_triage.models.bundle import read_manifest
    from ticket_triage.route_map import RouteMapError, load_route_map

    try:
        routes = load_route_map(settings.route_map_file)
        if routes is not None:
            routes.check_labels(read_manifest(bundle_path).targets["category"])
    except RouteMapError as exc:
        fail(str(exc))
    return routes
