"""``triage consume``: answer ticket messages from a RabbitMQ queue with the service's own parts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from ticket_triage.cli._common import fail

AmqpOpt = Annotated[
    str, typer.Option("--amqp", help="Broker URL, e.g. amqp://guest:guest@127.0.0.1:5672/ (%2F is '/').")
]
QueueOpt = Annotated[str, typer.Option("--queue", help="Queue of ticket messages (declared durable).")]
ResultsOpt = Annotated[
    str,
    typer.Option("--results-exchange", help="Topic exchange for answers, routing key auto or review."),
]
ModelDirOpt = Annotated[
    Path | None,
    typer.Option("--model", help="Bundle folder, or a models folder with a LIVE file (default: settings)."),
]
PrefetchOpt = Annotated[
    int, typer.Option("--prefetch", min=1, max=65_535, help="Messages held (being answered) at once.")
]
DeadLetterOpt = Annotated[
    str | None,
    typer.Option("--dead-letter-queue", help="Where refused messages go (default: <queue>.dead)."),
]
TopKOpt = Annotated[
    int, typer.Option("--top-k", min=0, max=10_000, help="Categories listed per answer; 0 lists all.")
]


def consume(
    amqp: AmqpOpt,
    queue: QueueOpt,
    results_exchange: ResultsOpt,
    model: ModelDirOpt = None,
    prefetch: PrefetchOpt = 64,
    dead_letter_queue: DeadLetterOpt = None,
    top_k: TopKOpt = 5,
) -> None:
    """Triage ticket messages from RabbitMQ until SIGTERM (answers published, refusals parked).

    Each input is acked once the broker confirmed its answer, or its copy in the dead-letter queue."""
    import aiormq

    from ticket_triage.broker.consumer import ConsumerOptions
    from ticket_triage.broker.lifecycle import ForcedStopError, consume_until_stopped
    from ticket_triage.config import Settings
    from ticket_triage.models.bundle import BundleError, check_bundle, read_manifest, resolve_bundle_path
    from ticket_triage.route_map import RouteMapError

    settings = Settings() if model is None else Settings(models_dir=model.resolve())
    try:  # the reason now, before a broker connection and a model load
        bundle_path = resolve_bundle_path(settings.models_dir)
        check_bundle(bundle_path, read_manifest(bundle_path))
    except BundleError as exc:
        fail(f"{exc} (train one with `triage train` or `make run`)")
    options = ConsumerOptions(
        amqp_url=amqp,
        queue=queue,
        results_exchange=results_exchange,
        dead_letter_queue=dead_letter_queue or f"{queue}.dead",
        prefetch=prefetch,
        top_k=top_k,
    )
    broker = _shown(amqp)

    def ready() -> None:
        typer.echo(
            f"Ticket Triage consuming {queue} on {broker} with {bundle_path.name}: answers to"
            f" {results_exchange}, refusals to {options.dead_letter_queue}, prefetch {prefetch}",
            err=True,
        )

    try:
        counts = asyncio.run(consume_until_stopped(settings, options, on_ready=ready))
    except ForcedStopError as exc:
        typer.echo(f"consume: stopped before finishing: {exc}", err=True)
        raise typer.Exit(code=1) from None
    except RouteMapError as exc:
        fail(str(exc))
    except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
        fail(f"broker {broker}: {type(exc).__name__}: {exc}")
    typer.echo(f"consume: stopped; {counts.line()}", err=True)


def _shown(url: str) -> str:
    """The broker's address without its credentials, for the terminal."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path or '/'}"
