"""Alembic runs this; it only migrates the connection `ticket_triage.review.db.migrate` hands over."""

from __future__ import annotations

from alembic import context

from ticket_triage.review.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run review migrations through ticket_triage.review.db.migrate(engine)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
