"""A logical dump of every table inside one snapshot, and its load into an empty database.

Rows are JSON arrays in the reflected column order; values JSON cannot carry are tagged
objects: {"b": base64url} bytes, {"t": ISO 8601 UTC} timestamps, {"d": ISO} dates,
{"n": text} decimals, {"j": value} JSON documents (docs/protocol.md §27.3).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, func, select, text

from vault.protocol.encoding import b64decode, b64encode

VERSION_TABLE = "alembic_version"
BATCH_ROWS = 500


@contextlib.contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection that sees the database as it was when this began.

    PostgreSQL: a REPEATABLE READ, READ ONLY transaction (one snapshot for every query).
    SQLite: an explicit transaction; in WAL mode its first read fixes what it sees.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        else:
            conn.exec_driver_sql("BEGIN")
        conn.execute(text("SELECT 1 FROM alembic_version")).all()  # fixes the snapshot now
        try:
            yield conn
        finally:
            conn.rollback()


def tables(conn: Connection) -> list[Table]:
    """Every table but Alembic's, parents before children (the order rows load in)."""
    meta = MetaData()
    meta.reflect(bind=conn)
    # The schema has no foreign-key cycles (SQLAlchemy would warn here if one appeared).
    return [t for t in meta.sorted_tables if t.name != VERSION_TABLE]


def revision(conn: Connection) -> str:
    """The schema revision the database is at."""
    value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    return str(value)


def encode_value(value: Any) -> Any:
    """One column value as JSON."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b": b64encode(bytes(value))}
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)  # the app stores UTC
        return {"t": aware.astimezone(UTC).isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"n": str(value)}
    if isinstance(value, dict | list):
        return {"j": value}
    return value


def decode_value(value: Any) -> Any:
    """A column value from its JSON form."""
    if not isinstance(value, dict):
        return value
    [(tag, inner)] = value.items()
    decoders: dict[str, Any] = {
        "b": b64decode,
        "t": datetime.fromisoformat,
        "d": date.fromisoformat,
        "n": Decimal,
        "j": lambda v: v,
    }
    return decoders[tag](inner)


def table_rows(conn: Connection, table: Table) -> Iterator[bytes]:
    """Each row of a table as a JSON array, streamed from the database."""
    query = select(table)
    primary = list(table.primary_key.columns)
    if primary:
        query = query.order_by(*primary)
    result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(query)
    for row in result:
        yield json.dumps([encode_value(v) for v in row], separators=(",", ":")).encode()


def is_empty(engine: Engine) -> bool:
    """True when the database has no tables at all."""
    meta = MetaData()
    meta.reflect(bind=engine)
    return not meta.tables


def drop_everything(engine: Engine) -> None:
    """Drop every table (a forced restore, or cleaning up after a failed one)."""
    meta = MetaData()
    meta.reflect(bind=engine)
    meta.drop_all(bind=engine)


class Loader:
    """Inserts dumped rows into a freshly migrated database, in one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.tables = {t.name: t for t in tables(conn)}
        # Migrations may seed rows (counters, singletons); the dump has their values.
        for table in reversed(list(self.tables.values())):
            conn.execute(table.delete())
        self._table: Table | None = None
        self._columns: list[str] = []
        self._batch: list[dict[str, Any]] = []
        self.rows = 0

    def begin_table(self, name: str, columns: list[str]) -> None:
        """Rows of ``name`` follow, with these columns."""
        self.flush()
        table = self.tables.get(name)
        if table is None:
            raise ValueError(f"the restored schema has no table {name!r}")
        missing = set(columns) - set(table.columns.keys())
        if missing:
            raise ValueError(f"table {name!r} has no columns {sorted(missing)}")
        self._table, self._columns = table, columns

    def add_row(self, payload: bytes) -> None:
        """One dumped row of the current table."""
        values = json.loads(payload)
        if self._table is None or len(values) != len(self._columns):
            raise ValueError("a row does not match its table")
        self._batch.append({c: decode_value(v) for c, v in zip(self._columns, values, strict=True)})
        self.rows += 1
        if len(self._batch) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Insert the rows held so far."""
        if self._table is not None and self._batch:
            self.conn.execute(self._table.insert(), self._batch)
        self._batch = []

    def reset_sequences(self) -> None:
        """PostgreSQL: move each serial counter past the largest restored value."""
        self.flush()
        if self.conn.dialect.name != "postgresql":
            return
        for table in self.tables.values():
            for column in table.columns:
                sequence = self.conn.execute(
                    text("SELECT pg_get_serial_sequence(:t, :c)"),
                    {"t": table.name, "c": column.name},
                ).scalar()
                if sequence is None:
                    continue
                top = self.conn.execute(select(func.max(column))).scalar()
                self.conn.execute(
                    text("SELECT setval(:s, :v, :called)"),
                    {"s": sequence, "v": top or 1, "called": top is not None},
                )
