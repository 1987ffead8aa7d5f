"""Play a malicious operator who holds the database and the server's keys.

Import explicitly: ``from tests.integration.attacks import ...``. Each helper does what
such an operator can do without the server's code: write rows and sign with the log key.
"""

from __future__ import annotations

import time

from flask import Flask
from sqlalchemy import select, update

from vault.accounts import services as accounts
from vault.accounts.models import User, UserKey
from vault.db import database
from vault.directory import services as directory
from vault.directory.models import LogEntry
from vault.protocol import keys as pkeys
from vault.protocol import transparency as kt


def forge_key(
    app: Flask, user_id: str, *, version: int | None = None, serve: bool = True
) -> pkeys.KeyPairs:
    """Log a fresh self-signed key pair in someone's name and serve it as their current key.

    With ``version`` None the forgery reuses the account's current version (a second
    ``publish`` for it); otherwise it claims that version. With ``serve`` False the key row
    is left alone, as a server showing the owner their real key (a split view) would.
    Returns the operator's keys.
    """
    with app.app_context():
        db = database(app).sessions()
        try:
            user = db.get(User, user_id)
            assert user is not None
            key = db.scalars(
                select(UserKey).where(
                    UserKey.user_id == user_id, UserKey.version == user.key_version
                )
            ).one()
            forged = pkeys.KeyPairs.generate(version or key.version)
            public = forged.public(accounts.display_name(app.extensions["haven.keyring"], user))
            now_ms = int(time.time() * 1000)
            entry = kt.KeyEntry(
                "publish",
                user_id,
                public.version,
                public.x25519,
                public.ed25519,
                public.signature,
                now_ms,
            )
            index = directory.write_entry(db, app.extensions["haven.keyring"], entry)
            if not serve:
                db.commit()
                return forged
            key.version = public.version
            key.x25519, key.ed25519, key.signature = public.x25519, public.ed25519, public.signature
            key.log_index, key.logged_at_ms = index, now_ms
            user.key_version = public.version
            db.commit()
            return forged
        finally:
            db.close()


def hide_entries(app: Flask, user_id: str, *, after: int) -> None:
    """Point the ``user_id`` column of someone's entries from ``after`` on at nobody."""
    with app.app_context():
        db = database(app).sessions()
        try:
            db.execute(
                update(LogEntry)
                .where(LogEntry.user_id == user_id, LogEntry.index >= after)
                .values(user_id="x")
            )
            db.commit()
        finally:
            db.close()
