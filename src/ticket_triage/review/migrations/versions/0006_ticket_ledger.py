"""Ticket ledger: the answer given to each version of a helpdesk ticket, so a retried delivery gets it again.

Revision ID: 0006_ticket_ledger
Revises: 0005_review_tags
Create Date: 2026-12-01

One row per (source, ticket id, content digest); the unique index is what makes two deliveries of the same
ticket version racing each other end with one answer. ``answer`` is the Prediction as sent.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006_ticket_ledger"
down_revision = "0005_review_tags"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        "ticket_answers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(200), nullable=False),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.Column("prediction_id", sa.String(64), nullable=False),
        sa.Column("answer", json, nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ux_ticket_answers_version",
        "ticket_answers",
        ["source", "ticket_id", "content_digest"],
        unique=True,
    )
    op.create_index("ix_ticket_answers_answered_at", "ticket_answers", ["answered_at"])


def downgrade() -> None:
    op.drop_index("ix_ticket_answers_answered_at", table_name="ticket_answers")
    op.drop_index("ux_ticket_answers_version", table_name="ticket_answers")
    op.drop_table("ticket_answers")
