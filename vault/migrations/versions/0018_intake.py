"""intake: anonymous reports, their keys, entries and attachments, the intake team (protocol §20)

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 15:01:39.957591
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import vault.db

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "intake_challenges",
        sa.Column("challenge", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expires_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("challenge", name=op.f("pk_intake_challenges")),
    )
    with op.batch_alter_table("intake_challenges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intake_challenges_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "intake_reports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("lookup", sa.LargeBinary(length=32), nullable=False),
        sa.Column("box_public", sa.LargeBinary(length=32), nullable=False),
        sa.Column("sign_public", sa.LargeBinary(length=32), nullable=False),
        sa.Column("reporter_key", sa.LargeBinary(length=101), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "new", "assigned", "handled", name="reportstatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("assignee_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["users.id"],
            name=op.f("fk_intake_reports_assignee_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_reports")),
        sa.UniqueConstraint("lookup", name=op.f("uq_intake_reports_lookup")),
    )
    with op.batch_alter_table("intake_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intake_reports_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_intake_reports_last_activity_at"), ["last_activity_at"], unique=False
        )

    op.create_table(
        "intake_team_members",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("added_by", sa.String(length=32), nullable=True),
        sa.Column("added_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["added_by"],
            ["users.id"],
            name=op.f("fk_intake_team_members_added_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_intake_team_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_intake_team_members")),
    )
    op.create_table(
        "intake_attachments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("report_id", sa.String(length=32), nullable=False),
        sa.Column("object_name", sa.String(length=64), nullable=False),
        sa.Column("upload_id", sa.String(length=1024), nullable=True),
        sa.Column("ciphertext_size", sa.BigInteger(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("part_size", sa.BigInteger(), nullable=False),
        sa.Column("part_count", sa.Integer(), nullable=False),
        sa.Column("created_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finalized_at", vault.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["intake_reports.id"],
            name=op.f("fk_intake_attachments_report_id_intake_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_attachments")),
        sa.UniqueConstraint("object_name", name=op.f("uq_intake_attachments_object_name")),
    )
    with op.batch_alter_table("intake_attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intake_attachments_report_id"), ["report_id"], unique=False
        )

    op.create_table(
        "intake_entries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("report_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.String(length=32), nullable=True),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(length=66560), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column("created_at", vault.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_intake_entries_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["intake_reports.id"],
            name=op.f("fk_intake_entries_report_id_intake_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_entries")),
        sa.UniqueConstraint("report_id", "seq", name=op.f("uq_intake_entries_report_id")),
    )
    with op.batch_alter_table("intake_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intake_entries_report_id"), ["report_id"], unique=False
        )

    op.create_table(
        "intake_report_keys",
        sa.Column("report_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(length=101), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["intake_reports.id"],
            name=op.f("fk_intake_report_keys_report_id_intake_reports"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_intake_report_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("report_id", "user_id", name=op.f("pk_intake_report_keys")),
    )
    op.create_table(
        "intake_attachment_parts",
        sa.Column("attachment_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["attachment_id"],
            ["intake_attachments.id"],
            name=op.f("fk_intake_attachment_parts_attachment_id_intake_attachments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("attachment_id", "number", name=op.f("pk_intake_attachment_parts")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("intake_attachment_parts")
    op.drop_table("intake_report_keys")
    with op.batch_alter_table("intake_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_entries_report_id"))

    op.drop_table("intake_entries")
    with op.batch_alter_table("intake_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_attachments_report_id"))

    op.drop_table("intake_attachments")
    op.drop_table("intake_team_members")
    with op.batch_alter_table("intake_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_reports_last_activity_at"))
        batch_op.drop_index(batch_op.f("ix_intake_reports_created_at"))

    op.drop_table("intake_reports")
    with op.batch_alter_table("intake_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_challenges_expires_at"))

    op.drop_table("intake_challenges")
