"""Fast account factories that go through the services, not the HTTP client.

Registration over HTTP runs Argon2id on the client (64 MiB, ~0.3 s); tests that only need
accounts to exist (authorization, bad input) build them here with random subkeys.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import Engine, MetaData, Table, func, select
from sqlalchemy.orm import Session

from vault.accounts import services as accounts
from vault.accounts.models import Role, User
from vault.db import database
from vault.keyring import Keyring
from vault.protocol import keys as pkeys
from vault.protocol.kdf import KdfParams
from vault.storage import store

CHEAP = accounts.HashCost(1, 8192)


@dataclass
class Person:
    """A test account and its private keys."""

    id: str
    username: str
    role: str
    keys: pkeys.KeyPairs
    public: pkeys.PublicKeys


def make_person(
    db: Session, ring: Keyring, role: Role, username: str, invited_by: str | None = None
) -> Person:
    """Create an account through the registration service."""
    creator = db.get(User, invited_by) if invited_by else None
    _, token = accounts.create_invite(db, role, creator, 1)
    keys = pkeys.KeyPairs.generate()
    public = keys.public(username)
    wrap = pkeys.wrap_bundle(keys, username, os.urandom(32))
    reg = accounts.Registration(
        invite_token=token,
        username=username,
        passphrase=accounts.NewPassphrase(KdfParams(os.urandom(16)), os.urandom(32), wrap),
        recovery_auth_key=os.urandom(32),
        recovery_wrapped_keys=wrap,
        public_keys=public,
    )
    user = accounts.register(db, ring, CHEAP, reg)
    return Person(user.id, username, role.value, keys, public)


def session_cookie_for(app: Flask, client: object, person_id: str) -> None:
    """Sign a Flask test client in as an account without running the login KDF."""
    import time

    with app.app_context():
        db = app.extensions["haven.db"].sessions()
        user = db.get(User, person_id)
        assert user is not None
        session_id = user.get_id()
        db.close()
    with client.session_transaction() as sess:  # type: ignore[attr-defined]
        sess["_user_id"] = session_id
        sess["iat"] = int(time.time())
        sess.permanent = True


_SCHEMAS: dict[str, list[Table]] = {}


def tables(engine: Engine) -> list[Table]:
    """Every table of a test database, in dependency order.

    Reflected once per backend per worker: every test database is a copy of the same
    migrated template, and reflecting takes a few hundred milliseconds on a loaded machine.
    """
    name = engine.dialect.name
    if name not in _SCHEMAS:
        meta = MetaData()
        meta.reflect(engine)
        _SCHEMAS[name] = list(meta.sorted_tables)
    return _SCHEMAS[name]


def row_counts(app: Flask) -> dict[str, int]:
    """How many rows each table holds, to show that a refused request changed nothing."""
    engine = app.extensions["haven.db"].engine
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in tables(engine)
        }


def snapshot(app: Flask) -> dict[str, Any]:
    """Every row of every table, every object and upload in the bucket, every server key file."""
    engine = database(app).engine
    with engine.connect() as conn:
        # Plain SQL: a select built per table would be compiled again for each new engine.
        rows = {
            t.name: sorted(map(repr, conn.exec_driver_sql(f'SELECT * FROM "{t.name}"').all()))
            for t in tables(engine)
        }
    objects = store(app)
    keys = Path(app.config["HAVEN_KEYS_DIR"])
    return {
        "rows": rows,
        "objects": sorted(name for name, _ in objects.list_objects("")),
        "uploads": sorted(u.object_name for u in objects.list_uploads("")),
        "keys": {
            str(p.relative_to(keys)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(keys.rglob("*"))
            if p.is_file()
        },
    }
