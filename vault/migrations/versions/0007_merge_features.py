"""merge the feature branches into one head

Revision ID: 0007
Revises: 0004, 0006
Create Date: 2026-11-23 12:05:00
"""

from __future__ import annotations

revision = "0007"
down_revision = ("0004", "0006")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the branches touch different tables."""


def downgrade() -> None:
    """Nothing to change."""
