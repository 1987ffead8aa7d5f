"""The test databases handed back for reuse are the migrated template again, or are dropped."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import FAST_SERVER_HASH
from tests.dbpool import DatabasePool, fingerprint
from tests.factories import make_person
from tests.services import PostgresServer
from vault import create_app
from vault.accounts.models import Role
from vault.db import database


@pytest.fixture
def pool(postgres: PostgresServer) -> Iterator[DatabasePool]:
    """A pool of this test's own, its databases dropped at the end."""
    made = DatabasePool(postgres, "haven_template")
    yield made
    for name in made.free:
        postgres.drop_database(name)


def _databases(postgres: PostgresServer) -> set[str]:
    with postgres.connect("postgres") as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_a_database_given_back_after_writes_is_the_template_again(
    postgres: PostgresServer, pool: DatabasePool
) -> None:
    with postgres.connect("haven_template") as conn:
        template = fingerprint(conn)
        clock = conn.execute("SELECT * FROM message_clock").fetchall()
    name = pool.take()
    with postgres.connect(name) as conn:
        conn.execute("UPDATE message_clock SET seq = seq + 41")
        conn.execute("DELETE FROM alembic_version")
        conn.execute("SELECT nextval('events_id_seq')")
        conn.execute("SELECT setval('user_keys_id_seq', 99)")
        assert fingerprint(conn) != template
    pool.give_back(name)
    assert name not in _databases(postgres)  # renamed: the old name reaches nothing
    assert len(pool.free) == 1
    again = pool.take()
    assert again != name
    with postgres.connect(again) as conn:
        assert fingerprint(conn) == template
        assert conn.execute("SELECT * FROM message_clock").fetchall() == clock
        assert conn.execute("SELECT nextval('events_id_seq')").fetchone() == (1,)
    pool.give_back(again)


def test_rows_in_tables_linked_by_foreign_keys_are_all_removed(
    postgres: PostgresServer, pool: DatabasePool
) -> None:
    name = pool.take()
    with postgres.connect(name) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        before = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone() for t in tables}
    # Rows made the way the app makes them: accounts, their keys, an invite and a case.
    app = create_app(
        {
            "HAVEN_TESTING": "true",
            "HAVEN_DATABASE_URL": postgres.url(name),
            "HAVEN_KEYS_DIR": str(postgres.root / f"keys-{name}"),
            "HAVEN_JOBS_ENABLED": "false",
            **FAST_SERVER_HASH,
        }
    )
    with app.app_context():
        db = database(app).sessions()
        ring = app.extensions["haven.keyring"]
        counsel = make_person(db, ring, Role.COUNSEL, "pool.counsel")
        make_person(db, ring, Role.SURVIVOR, "pool.survivor", invited_by=counsel.id)
        db.close()
    with postgres.connect(name) as conn:
        made = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone() for t in tables}
    database(app).engine.dispose()
    pool.give_back(name)
    again = pool.take()
    with postgres.connect(again) as conn:
        after = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone() for t in tables}
    assert after == before
    assert made != before  # the app's rows were there to remove
    pool.give_back(again)


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE message_clock ADD COLUMN extra integer",
        "CREATE TABLE stray (x integer)",
        "CREATE INDEX stray_index ON alembic_version (version_num DESC)",
        "ALTER TABLE alembic_version ALTER COLUMN version_num SET DEFAULT 'x'",
        "ALTER SEQUENCE events_id_seq INCREMENT BY 2",
    ],
)
def test_a_changed_schema_is_dropped_not_reused(
    postgres: PostgresServer, pool: DatabasePool, change: str
) -> None:
    name = pool.take()
    with postgres.connect(name) as conn:
        conn.execute(change)  # type: ignore[arg-type]
    pool.give_back(name)
    assert pool.free == []
    assert name not in _databases(postgres)


def test_a_connection_left_open_is_ended_before_the_reset(
    postgres: PostgresServer, pool: DatabasePool
) -> None:
    name = pool.take()
    left = postgres.connect(name)
    left.execute("BEGIN")
    left.execute("UPDATE message_clock SET seq = seq + 1")  # holds the row's lock
    pool.give_back(name)
    assert len(pool.free) == 1
    with pytest.raises(psycopg.OperationalError):
        left.execute("SELECT 1")
    left.close()
