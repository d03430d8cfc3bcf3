"""The ``triage`` command: the contract other tools script against (train, predict, evaluate, demo,
and the feedback loop: retrain, compare, promote). One module per command group; this one lists them."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from ticket_triage.cli.consume import consume
from ticket_triage.cli.dead_letters import dead_letter_app
from ticket_triage.cli.demo import demo
from ticket_triage.cli.drift import drift_report
from ticket_triage.cli.feedback import compare, promote, retrain
from ticket_triage.cli.keys import keys_app
from ticket_triage.cli.predict import evaluate, predict
from ticket_triage.cli.serve import serve
from ticket_triage.cli.train import train

app = typer.Typer(
    help="Ticket Triage: classify helpdesk tickets into a queue and a priority with calibrated confidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each step.")] = False) -> None:
    """Ticket Triage command line."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(message)s",
        stream=sys.stderr,
    )


# In the order `triage --help` lists them.
app.command()(train)
app.command()(predict)
app.command()(evaluate)
app.command("drift-report")(drift_report)
app.command()(demo)
app.command()(retrain)
app.command()(compare)
app.command()(promote)
app.command()(serve)
app.command()(consume)
app.add_typer(keys_app, name="keys")
app.add_typer(dead_letter_app, name="dead-letter")
