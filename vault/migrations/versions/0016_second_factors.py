"""second factors: TOTP secrets (sealed), recovery codes (hashed), passkeys, the policy (§21)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.db import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "totp_factors",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(length=128), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_totp_factors_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_totp_factors")),
    )
    op.create_index(
        op.f("ix_totp_factors_key_version"), "totp_factors", ["key_version"], unique=False
    )
    op.create_table(
        "factor_recovery_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("used_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_factor_recovery_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_factor_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_factor_recovery_codes_code_hash")),
    )
    op.create_index(
        op.f("ix_factor_recovery_codes_user_id"),
        "factor_recovery_codes",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "passkeys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(length=1023), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=1024), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("prf_wrapped_keys", sa.LargeBinary(length=256), nullable=True),
        sa.Column("prf_key_version", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_passkeys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkeys")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_passkeys_credential_id")),
    )
    op.create_index(op.f("ix_passkeys_user_id"), "passkeys", ["user_id"], unique=False)
    op.create_table(
        "factor_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("is_required_for_staff", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_factor_policy")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("factor_policy")
    op.drop_index(op.f("ix_passkeys_user_id"), table_name="passkeys")
    op.drop_table("passkeys")
    op.drop_index(op.f("ix_factor_recovery_codes_user_id"), table_name="factor_recovery_codes")
    op.drop_table("factor_recovery_codes")
    op.drop_index(op.f("ix_totp_factors_key_version"), table_name="totp_factors")
    op.drop_table("totp_factors")
