"""duress_links: an account's duress passphrase and the decoy account it opens (protocol §18)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.db import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "duress_links",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("decoy_id", sa.String(length=32), nullable=False),
        sa.Column("is_alerting", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decoy_id"],
            ["users.id"],
            name=op.f("fk_duress_links_decoy_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_duress_links_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_duress_links")),
        sa.UniqueConstraint("decoy_id", name=op.f("uq_duress_links_decoy_id")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("duress_links")
