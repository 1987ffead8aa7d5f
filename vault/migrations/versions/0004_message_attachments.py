"""message attachments: grants made by messages

Revision ID: 0004
Revises: 0002, 0003
Create Date: 2026-11-23 12:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = ("0002", "0003")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "message_grants",
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["document_grants.id"],
            name=op.f("fk_message_grants_grant_id_document_grants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_grants_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "grant_id", name=op.f("pk_message_grants")),
    )
    with op.batch_alter_table("message_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_grants_grant_id"), ["grant_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("message_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_grants_grant_id"))
    op.drop_table("message_grants")
