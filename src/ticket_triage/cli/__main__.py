"""``python -m ticket_triage.cli``: the ``triage`` command without its console script."""

from ticket_triage.cli import app

app()
