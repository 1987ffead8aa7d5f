"""Migrations: one head, and the migrated schema matches the models on both databases."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

import vault.models  # noqa: F401 - every table on the metadata
from tests.services import PostgresServer
from vault.db import Base, make_engine
from vault.migrate import alembic_config, upgrade


def test_there_is_exactly_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_0010_numbers_each_cases_existing_events_from_one(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        name = f"m_{secrets.token_hex(6)}"
        postgres.execute(f"CREATE DATABASE {name}")
        url = postgres.url(name)
    upgrade(url, "0009")
    engine = make_engine(url)
    rows = [("a", "upload"), ("b", "upload"), ("a", "download"), ("b", "grant"), ("a", "grant")]
    try:
        with engine.begin() as conn:
            for case_id, kind in rows:
                conn.execute(
                    text(
                        "INSERT INTO events (kind, case_id, created_at)"
                        " VALUES (:kind, :case_id, CURRENT_TIMESTAMP)"
                    ),
                    {"kind": kind, "case_id": case_id},
                )
        upgrade(url)
        with engine.connect() as conn:
            got = conn.execute(text("SELECT case_id, kind, seq FROM events ORDER BY id")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in got] == [
        ("a", "upload", 1),
        ("b", "upload", 1),
        ("a", "download", 2),
        ("b", "grant", 2),
        ("a", "grant", 3),
    ]
