"""figures: outcome reports, per-period privacy budgets, releases (protocol §28)

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.db import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "figure_outcomes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("record", sa.LargeBinary(length=65536), nullable=False),
        sa.Column("submitted_by", sa.String(length=32), nullable=True),
        sa.Column("submitted_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_figure_outcomes_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by"],
            ["users.id"],
            name=op.f("fk_figure_outcomes_submitted_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_figure_outcomes")),
        sa.UniqueConstraint("case_id", "period", name=op.f("uq_figure_outcomes_case_id")),
    )
    op.create_index(
        op.f("ix_figure_outcomes_case_id"), "figure_outcomes", ["case_id"], unique=False
    )
    op.create_index(op.f("ix_figure_outcomes_period"), "figure_outcomes", ["period"], unique=False)
    op.create_table(
        "figure_budgets",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("epsilon_total", sa.Float(), nullable=False),
        sa.Column("epsilon_spent", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("period", name=op.f("pk_figure_budgets")),
    )
    op.create_table(
        "figure_releases",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_figure_releases")),
    )
    op.create_index(op.f("ix_figure_releases_period"), "figure_releases", ["period"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_figure_releases_period"), table_name="figure_releases")
    op.drop_table("figure_releases")
    op.drop_table("figure_budgets")
    op.drop_index(op.f("ix_figure_outcomes_period"), table_name="figure_outcomes")
    op.drop_index(op.f("ix_figure_outcomes_case_id"), table_name="figure_outcomes")
    op.drop_table("figure_outcomes")
