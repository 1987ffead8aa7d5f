"""outside_links: links for outside recipients and their counted opens (protocol §23)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vault.db import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "links",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("lookup_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("creator_id", sa.String(length=32), nullable=False),
        sa.Column(
            "state",
            sa.Enum("pending", "active", "revoked", name="linkstate", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("kdf", sa.String(length=256), nullable=True),
        sa.Column("envelope", sa.LargeBinary(length=1593), nullable=True),
        sa.Column("creator_label", sa.LargeBinary(length=181), nullable=False),
        sa.Column("survivor_label", sa.LargeBinary(length=181), nullable=True),
        sa.Column("max_opens", sa.Integer(), nullable=False),
        sa.Column("opens", sa.Integer(), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("approved_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_links_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"], ["users.id"], name=op.f("fk_links_creator_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
        sa.UniqueConstraint("lookup_id", name=op.f("uq_links_lookup_id")),
    )
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_links_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_links_creator_id"), ["creator_id"], unique=False)
    op.create_table(
        "link_documents",
        sa.Column("link_id", sa.String(length=32), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_link_documents_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["links.id"],
            name=op.f("fk_link_documents_link_id_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("link_id", "document_id", name=op.f("pk_link_documents")),
    )
    with op.batch_alter_table("link_documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_link_documents_document_id"), ["document_id"], unique=False
        )
    op.create_table(
        "link_opens",
        sa.Column("ticket_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("link_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"], ["links.id"], name=op.f("fk_link_opens_link_id_links"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_hash", name=op.f("pk_link_opens")),
    )
    with op.batch_alter_table("link_opens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_opens_link_id"), ["link_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("link_opens")
    op.drop_table("link_documents")
    op.drop_table("links")
