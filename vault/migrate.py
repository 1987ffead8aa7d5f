"""Run Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at vault/migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", "vault:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the database up to ``revision``."""
    command.upgrade(alembic_config(url), revision)
