"""recovery shares: split recovery setups, held shares, recovery requests (protocol §22)

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.db import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    target_table = target.split(".")[0]
    return sa.ForeignKeyConstraint(
        [column],
        [target],
        name=op.f(f"fk_{table}_{column}_{target_table}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "recovery_setups",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("setup_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        _fk("recovery_setups", "user_id", "users.id", "CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_recovery_setups")),
        sa.UniqueConstraint("setup_id", name=op.f("uq_recovery_setups_setup_id")),
    )
    op.create_table(
        "recovery_shares",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("setup_user_id", sa.String(length=32), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("commitment", sa.LargeBinary(length=32), nullable=False),
        sa.Column("holder_id", sa.String(length=32), nullable=True),
        sa.Column("holder_key_version", sa.Integer(), nullable=True),
        sa.Column("sealed_share", sa.LargeBinary(length=128), nullable=True),
        _fk("recovery_shares", "holder_id", "users.id", "CASCADE"),
        _fk("recovery_shares", "setup_user_id", "recovery_setups.user_id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_shares")),
        sa.UniqueConstraint("setup_user_id", "slot", name=op.f("uq_recovery_shares_setup_user_id")),
    )
    op.create_index(
        op.f("ix_recovery_shares_holder_id"), "recovery_shares", ["holder_id"], unique=False
    )
    op.create_table(
        "share_recovery_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("setup_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("auth_hash", sa.String(length=255), nullable=False),
        sa.Column("request_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "waiting",
                "cancelled",
                "completed",
                name="sharerequeststate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("ready_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", UTCDateTime(timezone=True), nullable=True),
        _fk("share_recovery_requests", "user_id", "users.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_recovery_requests")),
    )
    op.create_index(
        op.f("ix_share_recovery_requests_user_id"),
        "share_recovery_requests",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "released_shares",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("sealed_share", sa.LargeBinary(length=128), nullable=False),
        sa.Column("released_by", sa.String(length=32), nullable=True),
        sa.Column("released_at", UTCDateTime(timezone=True), nullable=False),
        _fk("released_shares", "released_by", "users.id", "SET NULL"),
        _fk("released_shares", "request_id", "share_recovery_requests.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_released_shares")),
        sa.UniqueConstraint("request_id", "slot", name=op.f("uq_released_shares_request_id")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("released_shares")
    op.drop_index(op.f("ix_share_recovery_requests_user_id"), table_name="share_recovery_requests")
    op.drop_table("share_recovery_requests")
    op.drop_index(op.f("ix_recovery_shares_holder_id"), table_name="recovery_shares")
    op.drop_table("recovery_shares")
    op.drop_table("recovery_setups")
