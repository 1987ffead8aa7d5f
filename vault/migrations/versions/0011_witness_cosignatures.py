"""kt_cosignatures: witness cosignatures on key-log checkpoints (protocol §15)

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-30 08:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "kt_cosignatures",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(length=255), nullable=False),
        sa.Column("line", sa.String(length=1024), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("size", "witness", name=op.f("pk_kt_cosignatures")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("kt_cosignatures")
