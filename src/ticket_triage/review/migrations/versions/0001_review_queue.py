"""Review queue: items and their audit events.

Revision ID: 0001_review_queue
Revises:
Create Date: 2026-11-21

The types are spelled out here, not imported from the models, so this revision keeps describing the
schema it created even after the models move on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_review_queue"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(200)),
        sa.Column("subject", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("ticket_created_at", _time()),
        sa.Column("channel", sa.String(200)),
        sa.Column("customer_tier", sa.String(200)),
        sa.Column("urgency", sa.String(200)),
        sa.Column("language", sa.String(200)),
        sa.Column("metadata", _JSON),
        sa.Column("top_labels", _JSON, nullable=False),
        sa.Column("predicted_category", sa.String(200), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("predicted_priority", sa.String(200)),
        sa.Column("priority_rank", sa.SmallInteger(), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("enqueued_at", _time(), nullable=False),
        sa.Column("claimed_by", sa.String(200)),
        sa.Column("claimed_at", _time()),
        sa.Column("lease_expires_at", _time()),
        sa.Column("resolved_by", sa.String(200)),
        sa.Column("resolved_at", _time()),
        sa.Column("resolved_category", sa.String(200)),
        sa.Column("resolved_priority", sa.String(200)),
        sa.Column("note", sa.Text()),
    )
    op.create_index(
        "ix_review_items_queue", "review_items", ["resolved_at", "priority_rank", "enqueued_at", "id"]
    )
    op.create_index("ix_review_items_enqueued_at", "review_items", ["enqueued_at"])
    op.create_index("ix_review_items_predicted_category", "review_items", ["predicted_category"])

    op.create_table(
        "review_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("item_id", _ID, sa.ForeignKey("review_items.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", _time(), nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("detail", _JSON),
    )
    op.create_index("ix_review_events_item_id", "review_events", ["item_id"])


def downgrade() -> None:
    op.drop_table("review_events")
    op.drop_table("review_items")
