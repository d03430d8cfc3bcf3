"""Review key: a ticket repeated while its review item is open reuses that item.

Revision ID: 0004_open_review_key
Revises: 0003_dead_letters
Create Date: 2026-12-02

The index is unique over open items only (``resolved_at IS NULL``), a partial index on both SQLite and
PostgreSQL: once an item is resolved, the same ticket may be queued again. Existing rows keep no key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_open_review_key"
down_revision = "0003_dead_letters"
branch_labels = None
depends_on = None

_OPEN = sa.text("resolved_at IS NULL")


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default): SQLite does it in place, without batch mode's table copy.
    op.add_column("review_items", sa.Column("review_key", sa.String(64)))
    op.create_index(
        "ux_review_items_open_review_key",
        "review_items",
        ["review_key"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )


def downgrade() -> None:
    op.drop_index("ux_review_items_open_review_key", table_name="review_items")
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("review_key")
