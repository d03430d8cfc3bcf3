"""Dead letters: records the writer could not store (a data error on that record alone), with the reason.

Revision ID: 0003_dead_letters
Revises: 0002_audit_log
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_dead_letters"
down_revision = "0002_audit_log"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("prediction_id", sa.String(64)),
        # SHA-256 of kind and payload: dead-lettering the same record again adds no second row.
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        # ASCII JSON text, not a JSON column: the values that poisoned the record survive as escapes.
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_index("ux_dead_letters_fingerprint", "dead_letters", ["fingerprint"], unique=True)
    op.create_index("ix_dead_letters_failed_at", "dead_letters", ["failed_at"])


def downgrade() -> None:
    op.drop_table("dead_letters")
