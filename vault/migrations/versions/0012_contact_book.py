"""contact_books: each account's encrypted contact book and its counter (protocol §16)

Revision ID: 0012
Revises: 0009
Create Date: 2026-11-30 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.db import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "contact_books",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("book", sa.LargeBinary(length=262144), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("counter >= 1", name=op.f("ck_contact_books_counter_positive")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_contact_books_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_contact_books")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("contact_books")
