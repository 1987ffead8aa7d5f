"""Case membership by consent (pending requests) and per-case event numbers

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 08:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.db import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "case_member_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("counsel_id", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=True),
        sa.Column("requested_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_case_member_requests_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["counsel_id"],
            ["users.id"],
            name=op.f("fk_case_member_requests_counsel_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["users.id"],
            name=op.f("fk_case_member_requests_requested_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_member_requests")),
        sa.UniqueConstraint("case_id", "counsel_id", name=op.f("uq_case_member_requests_case_id")),
    )
    with op.batch_alter_table("case_member_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_case_member_requests_case_id"), ["case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_case_member_requests_counsel_id"), ["counsel_id"], unique=False
        )

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
    # Number each case's existing events 1, 2, 3, … in the order they were recorded (the
    # global id); the (case_id, id) index makes each count a short range scan.
    op.execute(
        "UPDATE events SET seq = (SELECT count(*) FROM events AS earlier"
        " WHERE earlier.case_id = events.case_id AND earlier.id <= events.id)"
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_index("ix_events_case_id_id")
        batch_op.create_unique_constraint("uq_events_case_id_seq", ["case_id", "seq"])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_events_case_id_seq", type_="unique")
        batch_op.create_index("ix_events_case_id_id", ["case_id", "id"], unique=False)
        batch_op.drop_column("seq")
    with op.batch_alter_table("case_member_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_member_requests_counsel_id"))
        batch_op.drop_index(batch_op.f("ix_case_member_requests_case_id"))
    op.drop_table("case_member_requests")
