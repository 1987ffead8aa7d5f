"""Fresh PostgreSQL databases for tests, made once and emptied again between tests.

``CREATE DATABASE ... TEMPLATE`` cost about 0.15 s of PostgreSQL's CPU (it writes the files
and WAL of some 640 relations, the catalog's included), the first connection to a new
database builds its catalog cache again, and a full run made some 600 of them. So a
database a test is done with is emptied instead, and handed to the next test of the same
worker only once it is exactly the migrated template again:

1. every other connection to it is ended;
2. in one transaction, with foreign keys and triggers off (``session_replication_role``),
   every table's rows are deleted, the template's own rows copied back in and every
   sequence set to where the template's stands;
3. its fingerprint must equal the template's: schema (relations, columns and defaults,
   constraints, indexes, triggers, functions, enum labels, schemas, extensions, views,
   database settings), every table's rows and every sequence;
4. it is renamed, so that anything still holding the old name cannot reach the next test.

A database that fails any step (a migration test left another schema, the server was
stopped, a connection would not end) is dropped and the next test gets a new one.
"""

from __future__ import annotations

import secrets
import weakref
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from tests.services import PostgresServer

# The schemas PostgreSQL owns; everything else is the template's or a test's.
SYSTEM = "ARRAY['pg_catalog', 'information_schema', 'pg_toast']"

# Everything a migration or a test could change besides rows and sequences. Sent without
# parameters, so that psycopg leaves format()'s % alone.
SCHEMA = f"""
SELECT md5(string_agg(x, E'\\n' ORDER BY x)) FROM (
  SELECT format('rel %s %s %s', n.nspname, c.relname, c.relkind) AS x
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname <> ALL ({SYSTEM}) AND n.nspname NOT LIKE 'pg_temp%'
     AND n.nspname NOT LIKE 'pg_toast_temp%'
  UNION ALL
  SELECT format('col %s %s %s %s %s %s', c.oid::regclass, a.attnum, a.attname,
                format_type(a.atttypid, a.atttypmod), a.attnotnull,
                pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE n.nspname <> ALL ({SYSTEM}) AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT format('con %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
    FROM pg_constraint
   WHERE connamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname = ANY ({SYSTEM}))
  UNION ALL
  SELECT format('idx %s', pg_get_indexdef(i.indexrelid))
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname <> ALL ({SYSTEM})
  UNION ALL
  SELECT format('trg %s', pg_get_triggerdef(oid)) FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL
  SELECT format('fn %s %s', p.oid::regprocedure, md5(p.prosrc))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname <> ALL ({SYSTEM})
  UNION ALL
  SELECT format('enum %s %s %s', enumtypid::regtype, enumsortorder, enumlabel) FROM pg_enum
  UNION ALL
  SELECT format('ns %s', nspname) FROM pg_namespace
   WHERE nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'
  UNION ALL
  SELECT format('ext %s %s', extname, extversion) FROM pg_extension
  UNION ALL
  SELECT format('view %s %s', c.oid::regclass, pg_get_viewdef(c.oid))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('v', 'm') AND n.nspname <> ALL ({SYSTEM})
  UNION ALL
  SELECT format('set %s', setconfig) FROM pg_db_role_setting
   WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
) s
"""

TABLES = f"""
SELECT schemaname, tablename FROM pg_tables
 WHERE schemaname <> ALL ({SYSTEM}) ORDER BY 1, 2
"""

SEQUENCES = f"""
SELECT schemaname, sequencename, last_value, start_value, increment_by, min_value,
       max_value, cycle
  FROM pg_sequences
 WHERE schemaname <> ALL ({SYSTEM}) ORDER BY 1, 2
"""


def _tables(conn: psycopg.Connection[Any]) -> list[sql.Composable]:
    return [sql.Identifier(s, t) for s, t in conn.execute(TABLES).fetchall()]


class Fingerprint(NamedTuple):
    """What must match the template: the schema's digest, each table's rows' digest and
    each sequence (name, value and settings)."""

    schema: Any
    rows: list[Any]
    sequences: list[Any]


def fingerprint(conn: psycopg.Connection[Any]) -> Fingerprint:
    """The schema's digest, each table's rows and each sequence's value, of one database."""
    schema = conn.execute(SCHEMA).fetchone()
    tables = _tables(conn)
    rows: list[Any] = []
    if tables:
        parts = [
            sql.SQL(
                "SELECT {name}, (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text),"
                " '')) FROM {table} t)"
            ).format(name=sql.Literal(table.as_string(conn)), table=table)
            for table in tables
        ]
        rows = conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall()
    sequences = conn.execute(SEQUENCES).fetchall()
    return Fingerprint(schema, sorted(rows), sequences)


@dataclass
class Template:
    """What the migrated template holds: its fingerprint and its rows."""

    fingerprint: Fingerprint
    rows: dict[str, bytes]  # table (quoted) -> its rows in COPY's text format


@dataclass
class DatabasePool:
    """Databases made from ``template`` on ``server``, emptied and reused between tests."""

    server: PostgresServer
    template: str
    free: list[str] = field(default_factory=list)
    _template: Template | None = None

    def _read_template(self) -> Template:
        if self._template is None:
            with self.server.connect(self.template) as conn:
                rows: dict[str, bytes] = {}
                for table in _tables(conn):
                    copy_out = sql.SQL("COPY {} TO STDOUT").format(table)
                    with conn.cursor().copy(copy_out) as copy:
                        data = b"".join(bytes(chunk) for chunk in copy)
                    if data:
                        rows[table.as_string(conn)] = data
                self._template = Template(fingerprint(conn), rows)
        return self._template

    def take(self) -> str:
        """A database exactly like the template: one given back, or a new one."""
        if self.free:
            return self.free.pop()
        name = f"t_{secrets.token_hex(6)}"
        self.server.execute(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        return name

    def give_back(self, name: str) -> None:
        """Empty a database a test is done with for the next one, or drop it."""
        template = self._read_template()
        try:
            if self._reset(name, template):
                fresh = f"t_{secrets.token_hex(6)}"
                self.server.execute(f"ALTER DATABASE {name} RENAME TO {fresh}")
                self.free.append(fresh)
                return
        except psycopg.Error:
            pass
        # A fault test that left the server down keeps it: the folder goes at the session's end.
        self.server.drop_database(name)

    def _reset(self, name: str, template: Template) -> bool:
        with self.server.connect(name, autocommit=False) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            conn.commit()
            tables = _tables(conn)
            # One round trip (no parameters: psycopg sends it as a simple query).
            statements = [
                sql.SQL("SET LOCAL lock_timeout = '5s'"),
                sql.SQL("SET LOCAL session_replication_role = replica"),
                *(sql.SQL("DELETE FROM {}").format(table) for table in tables),
                *(
                    sql.SQL("SELECT setval({}, {}, {})").format(
                        sql.Literal(sql.Identifier(schema, name_).as_string(conn)),
                        sql.Literal(start if value is None else value),
                        sql.Literal(value is not None),
                    )
                    for schema, name_, value, start, *_ in template.fingerprint.sequences
                ),
            ]
            conn.execute(sql.SQL("; ").join(statements))
            for table, data in template.rows.items():
                with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    copy.write(data)
            conn.commit()
            same = fingerprint(conn) == template.fingerprint
            conn.rollback()
        return same


_POOLS: weakref.WeakKeyDictionary[PostgresServer, DatabasePool] = weakref.WeakKeyDictionary()


def pool_for(server: PostgresServer) -> DatabasePool:
    """The pool of databases made from ``haven_template`` on ``server``, one per server."""
    if server not in _POOLS:
        _POOLS[server] = DatabasePool(server, "haven_template")
    return _POOLS[server]
