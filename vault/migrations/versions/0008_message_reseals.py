"""message reseals: message keys re-sealed by a recipient who rotated their keys

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "message_reseals",
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(length=81), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_reseals_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_message_reseals_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "user_id", name=op.f("pk_message_reseals")),
    )
    with op.batch_alter_table("message_reseals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_reseals_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("message_reseals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_reseals_user_id"))
    op.drop_table("message_reseals")
