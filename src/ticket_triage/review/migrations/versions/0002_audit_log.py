"""Audit log of predictions, and a prediction id on review items so spool replays are idempotent.

Revision ID: 0002_audit_log
Revises: 0001_review_queue
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_audit_log"
down_revision = "0001_review_queue"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.add_column(sa.Column("prediction_id", sa.String(64)))
        # Unique but nullable: items queued before this revision have none.
        batch.create_index("ux_review_items_prediction_id", ["prediction_id"], unique=True)

    op.create_table(
        "prediction_audit",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("prediction_id", sa.String(64), nullable=False),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("ticket_id", sa.String(200)),
        sa.Column("category", sa.String(200), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("priority", sa.String(200)),
        sa.Column("route", sa.String(16), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        # The ticket's monitored feature values: the drift window is the latest rows of this table.
        sa.Column("signals", sa.JSON().with_variant(JSONB(), "postgresql")),
    )
    op.create_index("ux_prediction_audit_prediction_id", "prediction_audit", ["prediction_id"], unique=True)
    op.create_index("ix_prediction_audit_predicted_at", "prediction_audit", ["predicted_at"])


def downgrade() -> None:
    op.drop_table("prediction_audit")
    with op.batch_alter_table("review_items") as batch:
        batch.drop_index("ux_review_items_prediction_id")
        batch.drop_column("prediction_id")
