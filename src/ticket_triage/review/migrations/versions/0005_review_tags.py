"""Tags on review items: what the model tagged a ticket with, and what the reviewer corrected them to.

Revision ID: 0005_review_tags
Revises: 0004_open_review_key
Create Date: 2026-12-01

Both columns are nullable JSON lists: items from models without tags, and items queued before this
revision, have none; a resolution without a tag answer leaves ``resolved_tags`` empty (NULL), which the
export reads as "not reviewed", not as "no tags".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005_review_tags"
down_revision = "0004_open_review_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain nullable ADD COLUMNs: SQLite adds them in place.
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.add_column("review_items", sa.Column("predicted_tags", json))
    op.add_column("review_items", sa.Column("resolved_tags", json))


def downgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("resolved_tags")
        batch.drop_column("predicted_tags")
