"""Outbox of routing decisions for the notifier: one row per decision, delivered in id order per ticket.

Revision ID: 0007_notifications
Revises: 0006_ticket_ledger
Create Date: 2026-12-02

``prediction_id`` is unique, so a spool replay of the hand-off inserts each decision once. The claim query
looks only at pending rows, so its two indexes are partial (``status = 'pending'``) on both SQLite and
PostgreSQL: delivered rows pile up without slowing it down.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007_notifications"
down_revision = "0006_ticket_ledger"
branch_labels = None
depends_on = None

_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    time = sa.DateTime(timezone=True)
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("prediction_id", sa.String(64), nullable=False),
        sa.Column("ticket_key", sa.String(300)),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", time, nullable=False),
        sa.Column("lease_until", time),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", time, nullable=False),
        sa.Column("delivered_at", time),
    )
    op.create_index("ux_notifications_prediction_id", "notifications", ["prediction_id"], unique=True)
    # The claim: due pending rows in id order ...
    op.create_index(
        "ix_notifications_pending_due",
        "notifications",
        ["next_attempt_at", "id"],
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )
    # ... that no earlier pending row of the same ticket holds up.
    op.create_index(
        "ix_notifications_pending_ticket",
        "notifications",
        ["ticket_key", "id"],
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )
    # The admin listing and its counts, by status, newest first.
    op.create_index("ix_notifications_status", "notifications", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_notifications_status", table_name="notifications")
    op.drop_index("ix_notifications_pending_ticket", table_name="notifications")
    op.drop_index("ix_notifications_pending_due", table_name="notifications")
    op.drop_index("ux_notifications_prediction_id", table_name="notifications")
    op.drop_table("notifications")
