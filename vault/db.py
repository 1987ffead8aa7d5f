"""Database engine, one session per request, and the declarative Base."""

from __future__ import annotations

import enum
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import DateTime, Engine, Enum, MetaData, create_engine, event, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from vault import clock

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention, so migrations are stable."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Store aware datetimes converted to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Return aware UTC datetimes (SQLite gives naive ones back)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return clock.now()


def make_engine(url: str, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)


class Database:
    """An engine and its session factory, one per app."""

    def __init__(self, url: str, pool_size: int = 10, max_overflow: int = 20) -> None:
        self.engine = make_engine(url, pool_size, max_overflow)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)


def init_app(app: Flask) -> None:
    """Attach the database to the app and close the request session on teardown."""
    cfg = app.config
    app.extensions["haven.db"] = Database(
        cfg["HAVEN_DATABASE_URL"],
        cfg.get("HAVEN_DB_POOL_SIZE", 10),
        cfg.get("HAVEN_DB_MAX_OVERFLOW", 20),
    )
    app.teardown_appcontext(_close_session)


def database(app: Flask | None = None) -> Database:
    """The app's Database."""
    db: Database = (app or current_app).extensions["haven.db"]
    return db


def session() -> Session:
    """The session of the current request, opened on first use."""
    if "db_session" not in g:
        g.db_session = database().sessions()
    db_session: Session = g.db_session
    return db_session


def read_one_moment(db: Session) -> None:
    """Read the rest of this request's transaction from one snapshot of the database.

    The transaction so far (reads before the view: the signed-in account) ends, and the
    next begins as one that sees a single moment: REPEATABLE READ on PostgreSQL (its
    snapshot is taken at the first statement), and on SQLite an explicit BEGIN, since the
    driver starts none for reads and a WAL reader in a transaction sees one moment.
    Objects already loaded are expired, so they are read again inside it.
    """
    db.commit()
    db.expire_all()
    if db.get_bind().dialect.name == "postgresql":
        db.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    else:
        db.connection().exec_driver_sql("BEGIN")


def _close_session(_exc: BaseException | None) -> None:
    db_session: Session | None = g.pop("db_session", None)
    if db_session is not None:
        db_session.rollback()
        db_session.close()


def new_id() -> str:
    """A random, unguessable identifier (22 characters of base64url, about 128 bits).

    Never starting with "-", so it cannot be taken for an option on a command line.
    """
    while True:
        value = secrets.token_urlsafe(16)
        if not value.startswith("-"):
            return value


def str_enum(cls: type[enum.StrEnum]) -> Enum:
    """A portable enum column that stores the members' values (VARCHAR + CHECK)."""
    return Enum(
        cls,
        native_enum=False,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


_SQLITE_APPENDS: dict[int, threading.Lock] = {}


def serialise_appends(db: Session, lock_id: int) -> None:
    """Hold a lock on an append-only log until this transaction ends.

    PostgreSQL: a transaction-scoped advisory lock, so appends from every process take
    turns. SQLite (the single-process embedded default): a process lock, released when
    the session commits or rolls back.
    """
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
        return
    held: set[int] = db.info.setdefault("append_locks", set())
    if lock_id in held:
        return
    lock = _SQLITE_APPENDS.setdefault(lock_id, threading.Lock())
    lock.acquire()
    held.add(lock_id)

    def _release(session: Session, *_args: Any) -> None:
        if lock_id in session.info.get("append_locks", set()):
            session.info["append_locks"].discard(lock_id)
            lock.release()

    event.listen(db, "after_commit", _release, once=True)
    event.listen(db, "after_soft_rollback", _release, once=True)
