"""Admin operations: server key rotation and retirement, account states, aggregate figures.

Nothing here reads user content; there is none the server could read.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import nacl.utils
from sqlalchemy import Table, bindparam, func, or_, select, text, update
from sqlalchemy.orm import Session

from vault import clock
from vault.accounts import factors
from vault.accounts.duress import decoy_ids
from vault.accounts.models import DuressLink, Invite, KeyStatus, Role, User, UserKey
from vault.audit import chain
from vault.cases.models import Case
from vault.db import utcnow
from vault.directory import services as directory
from vault.directory.models import LogKey
from vault.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from vault.keyring import PURPOSES, Keyring, KeyringError, created_at, load_keyring
from vault.keyring import retire_key as _retire_file
from vault.keyring import rotate_key as _rotate_file
from vault.protocol import serverdata


@dataclass(frozen=True)
class KeyVersionStatus:
    """One live version of a server key."""

    purpose: str
    version: int
    is_current: bool
    created_at: float
    uses: int | None


def _data_key_uses(db: Session, version: int) -> int:
    query = select(func.count()).where(
        or_(User.data_key_version == version, User.lookup_key_version == version)
    )
    return int(db.scalar(query.select_from(User)) or 0)


def key_status(db: Session, ring: Keyring) -> list[KeyVersionStatus]:
    """Every live key version, with how many ciphertexts use each data key version."""
    rows = []
    for purpose in PURPOSES:
        current = ring.current_version(purpose)
        for version in ring.versions(purpose):
            uses = _data_key_uses(db, version) if purpose == "data" else None
            rows.append(
                KeyVersionStatus(
                    purpose,
                    version,
                    version == current,
                    created_at(ring.path, purpose, version),
                    uses,
                )
            )
    return rows


def rotate(db: Session, path: Path, purpose: str, actor_id: str | None = None) -> int:
    """Write a new current version; for the log key, announce it signed by the old one."""
    if purpose not in PURPOSES:
        raise InvalidRequest(f"unknown key purpose {purpose!r}")
    try:
        version = _rotate_file(path, purpose)
    except PermissionError as exc:
        raise Conflict(
            "the keyring is read-only here; run `haven keys rotate` where keys/ is writable",
            code="keyring_read_only",
        ) from exc
    if purpose == "logsign":
        directory.ensure_log_key(db, load_keyring(path))
    if purpose == "factor":
        factors.reseal_all(db, load_keyring(path))
    chain.append(
        db, "server_key_rotated", actor_id=actor_id, detail={"purpose": purpose, "version": version}
    )
    db.commit()
    return version


def _behind(current: int) -> Any:
    return or_(User.data_key_version != current, User.lookup_key_version != current)


_GUARDED_RESEAL = (
    update(cast(Table, User.__table__))
    .where(User.id == bindparam("b_id"), User.username_sealed == bindparam("b_old"))
    .values(username_sealed=bindparam("b_sealed"), username_lookup=bindparam("b_lookup"))
)


# PostgreSQL: the whole batch as one statement over four arrays, sent in binary (%b):
# text arrays of bytea would be hex-escaped and quoted value by value.
_GUARDED_RESEAL_PG = (
    "UPDATE users SET username_sealed = f.sealed, username_lookup = f.lookup,"
    " data_key_version = %(version)b, lookup_key_version = %(version)b"
    " FROM unnest(%(ids)b::varchar[], %(olds)b::bytea[], %(sealed)b::bytea[],"
    " %(lookups)b::bytea[]) AS f(id, old, sealed, lookup)"
    " WHERE users.id = f.id AND users.username_sealed = f.old"
)
# For this transaction only: join the batch to its rows by primary-key probes. With stale
# statistics the planner otherwise hashes the whole table for every batch, and even with
# fresh ones a hash join costs the database about a quarter more CPU than the probes.
_PROBE_BY_KEY_PG = (
    "SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)"
)


@dataclass
class _Resealed:
    """One batch: the ids read, in order, their sealed values as read, and the new ones."""

    version: int
    ids: list[str] = field(default_factory=list)
    olds: list[bytes] = field(default_factory=list)
    sealed: list[bytes] = field(default_factory=list)
    lookups: list[bytes] = field(default_factory=list)


def _write_guarded(db: Session, batch: _Resealed) -> int:
    """Write re-sealed rows whose sealed value is still the one read; return how many."""
    conn = db.connection()
    if conn.dialect.name == "postgresql":
        params = {
            "version": batch.version,
            "ids": batch.ids,
            "olds": batch.olds,
            "sealed": batch.sealed,
            "lookups": batch.lookups,
        }
        with cast(Any, conn.connection.driver_connection).cursor() as cursor:
            cursor.execute(_PROBE_BY_KEY_PG)
            cursor.execute(_GUARDED_RESEAL_PG, params)
            return int(cursor.rowcount)
    changes = [
        {"b_id": i, "b_old": o, "b_sealed": s, "b_lookup": k}
        for i, o, s, k in zip(batch.ids, batch.olds, batch.sealed, batch.lookups, strict=True)
    ]
    statement = _GUARDED_RESEAL.values(
        data_key_version=batch.version, lookup_key_version=batch.version
    )
    return conn.execute(statement, changes).rowcount


def _read_behind(db: Session, current: int, after: str, size: int) -> list[tuple[str, bytes]]:
    """The next (id, sealed) rows behind the current data key after an id, in id order
    (one keyset read in its own short transaction)."""
    rows = db.execute(
        select(User.id, User.username_sealed)
        .where(User.id > after, _behind(current))
        .order_by(User.id)
        .limit(size)
    ).all()
    db.commit()
    return [(user_id, sealed) for user_id, sealed in rows]


def _reseal(ring: Keyring, rows: list[tuple[str, bytes]], hidden: set[str]) -> _Resealed:
    """Re-seal rows read by _read_behind under the current data key, in memory."""
    current = ring.current_version("data")
    key = ring.current("data")
    batch = _Resealed(current)
    for user_id, sealed in rows:
        old = ring.get("data", serverdata.sealed_version(sealed))
        name = serverdata.open_identifier(old, "username", sealed)
        batch.ids.append(user_id)
        batch.olds.append(sealed)
        batch.sealed.append(serverdata.seal_identifier(key, current, "username", name))
        # A duress decoy keeps a random lookup: its name is its owner's (protocol §18.2).
        batch.lookups.append(
            nacl.utils.random(32) if user_id in hidden else serverdata.lookup_hash(key, name)
        )
    return batch


def _record(db: Session, ring: Keyring, count: int, actor_id: str | None) -> None:
    if count:
        chain.append(
            db,
            "data_reencrypted",
            actor_id=actor_id,
            detail={"version": ring.current_version("data"), "count": count},
        )
    db.commit()


def reencrypt_data(
    db: Session, ring: Keyring, batch: int = 500, actor_id: str | None = None
) -> int:
    """Re-seal one batch of identifiers under the current data key; return how many."""
    hidden = decoy_ids(db)
    rows = _read_behind(db, ring.current_version("data"), "", batch)
    done = _write_guarded(db, _reseal(ring, rows, hidden)) if rows else 0
    _record(db, ring, done, actor_id)
    return done


def _write_batch(db: Session, ring: Keyring, batch: _Resealed) -> int:
    """Write one re-sealed batch and its audit entry in one short transaction."""
    try:
        done = _write_guarded(db, batch)
        _record(db, ring, done, None)
    except BaseException:
        db.rollback()
        raise
    return done


def reencrypt_all(db: Session, ring: Keyring, batch: int = 5000) -> int:
    """Re-seal every identifier in batches, each its own short transaction, while traffic goes on.

    Passes walk the ids in order; rows a concurrent write changed mid-batch are caught
    by the next pass, which runs until one finds nothing left behind. Three stages overlap:
    batch N+1 is read (on this session) and batch N-1 written (on a second connection)
    while batch N is re-sealed, libsodium releasing the GIL around each call; the guard
    on the value read keeps a concurrent write whichever side of it a batch lands.
    """
    # Fresh statistics let the keyset read walk the primary key rather than sort the table.
    db.execute(text("ANALYZE users"))
    db.commit()
    current = ring.current_version("data")
    total = 0
    writer = Session(db.get_bind().engine, expire_on_commit=False)
    try:
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="reencrypt-read") as reads,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="reencrypt-write") as writes,
        ):
            while True:
                hidden = decoy_ids(db)
                db.commit()
                seen = 0
                written: Future[int] | None = None
                ahead = reads.submit(_read_behind, db, current, "", batch)
                while rows := ahead.result():
                    ahead = reads.submit(_read_behind, db, current, rows[-1][0], batch)
                    resealed = _reseal(ring, rows, hidden)
                    if written is not None:
                        total += written.result()
                    written = writes.submit(_write_batch, writer, ring, resealed)
                    seen += len(rows)
                if written is not None:
                    total += written.result()
                if not seen:
                    return total
    finally:
        writer.close()


@dataclass(frozen=True)
class Reencryption:
    """How far the identifiers are re-sealed under the current data key version."""

    version: int
    done: int
    total: int


def reencryption_progress(db: Session, ring: Keyring) -> Reencryption:
    """Accounts already under the current data key, of all (duress decoys left out, §18.1)."""
    current = ring.current_version("data")
    users = (
        select(func.count()).select_from(User).where(User.id.not_in(select(DuressLink.decoy_id)))
    )
    total = int(db.scalar(users) or 0)
    behind = users.where(or_(User.data_key_version != current, User.lookup_key_version != current))
    return Reencryption(current, total - int(db.scalar(behind) or 0), total)


def retire(
    db: Session,
    path: Path,
    purpose: str,
    version: int,
    session_lifetime: int,
    actor_id: str | None = None,
) -> None:
    """Drop a non-current version once nothing can still need it."""
    ring = load_keyring(path)
    if version not in ring.versions(purpose):
        raise NotFound(f"{purpose} key version {version} is not live")
    if version == ring.current_version(purpose):
        raise Conflict("the current version cannot be retired; rotate first", code="key_in_use")
    successor = min(v for v in ring.versions(purpose) if v > version)
    if purpose == "session":
        age = clock.time() - created_at(path, purpose, successor)
        if age < session_lifetime:
            wait = int(session_lifetime - age)
            raise Conflict(
                f"sessions signed by version {version} may still be live; retire in {wait} s",
                code="key_in_use",
            )
    if purpose == "data" and (uses := _data_key_uses(db, version)):
        raise Conflict(
            f"{uses} ciphertexts still use data key {version}; re-encrypt first", code="key_in_use"
        )
    if purpose == "factor" and (uses := factors.sealed_with(db, version)):
        raise Conflict(f"{uses} TOTP secrets still use factor key {version}", code="key_in_use")
    if purpose == "logsign":
        announced = db.get(LogKey, successor)
        if announced is None:
            raise Conflict("the successor log key is not announced yet", code="key_in_use")
    try:
        _retire_file(path, purpose, version)
    except (PermissionError, KeyringError) as exc:
        raise Conflict(str(exc), code="keyring_read_only") from exc
    chain.append(
        db, "server_key_retired", actor_id=actor_id, detail={"purpose": purpose, "version": version}
    )
    db.commit()


def list_accounts(db: Session, ring: Keyring) -> list[dict[str, Any]]:
    """Accounts for admin display: role, name, state. No content, no case membership."""
    from vault.accounts.services import display_name

    hidden = decoy_ids(db)
    users = [
        u
        for u in db.scalars(select(User).order_by(User.created_at, User.id)).all()
        if u.id not in hidden
    ]
    return [
        {
            "id": u.id,
            "role": u.role.value,
            "username": display_name(ring, u),
            "is_disabled": u.is_disabled,
            "key_version": u.key_version,
            "key_status": next(k.status.value for k in u.keys if k.version == u.key_version),
            "created_at": u.created_at.isoformat(),
        }
        for u in users
    ]


def set_disabled(db: Session, user_id: str, is_disabled: bool, by: User) -> User:
    """Disable or re-enable an account; disabling ends its sessions."""
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("no such account")
    if user.id == by.id:
        raise Conflict("admins cannot disable themselves", code="self_disable")
    user.is_disabled = is_disabled
    if is_disabled:
        user.session_version += 1
    chain.append(
        db,
        "account_disabled" if is_disabled else "account_enabled",
        actor_id=by.id,
        subject_id=user.id,
    )
    db.commit()
    return user


def mark_compromised(
    db: Session, ring: Keyring, user_id: str, actor_id: str | None = None
) -> UserKey:
    """Flag an account's current key as compromised: it must rotate at next login."""
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("no such account")
    key = next(k for k in user.keys if k.version == user.key_version)
    if key.status != KeyStatus.COMPROMISED:
        key.status = KeyStatus.COMPROMISED
        from vault.accounts.services import publish_key

        publish_key(db, ring, key, kind="compromise")
        user.session_version += 1
        chain.append(
            db,
            "key_marked_compromised",
            actor_id=actor_id,
            subject_id=user.id,
            detail={"version": key.version},
            ring=ring,
        )
    db.commit()
    return key


def figures(db: Session) -> dict[str, int]:
    """Aggregate counts with no identities (duress decoys and their cases left out, §18.1)."""
    decoys = select(DuressLink.decoy_id)
    users = select(func.count()).select_from(User).where(User.id.not_in(decoys))
    counts = {
        f"accounts_{role.value}": int(db.scalar(users.where(User.role == role)) or 0)
        for role in Role
    }
    counts["accounts_disabled"] = int(db.scalar(users.where(User.is_disabled.is_(True))) or 0)
    cases = select(func.count()).select_from(Case).where(Case.survivor_id.not_in(decoys))
    counts["cases"] = int(db.scalar(cases) or 0)
    counts["log_entries"] = directory.tree_size(db)
    return counts


def open_invites(db: Session) -> list[Invite]:
    """Invites for counsel and admins not yet used or expired, oldest first.

    Survivors' invites are made by their counsel and left out: who represents whom is not
    the admins' to see (§4.1).
    """
    return list(
        db.scalars(
            select(Invite)
            .where(
                Invite.role != Role.SURVIVOR,
                Invite.redeemed_at.is_(None),
                Invite.expires_at > utcnow(),
            )
            .order_by(Invite.created_at, Invite.id)
        )
    )


def revoke_invite(db: Session, invite_id: str, actor_id: str) -> None:
    """End an open invite now: it expires, so redeeming it gives invite_invalid."""
    invite = db.get(Invite, invite_id)
    if invite is None or invite.role == Role.SURVIVOR:
        raise NotFound("no such invite")
    now = utcnow()
    # One conditional UPDATE, as redemption is: of the two racing, exactly one wins.
    result = db.execute(
        update(Invite)
        .where(Invite.id == invite.id, Invite.redeemed_at.is_(None), Invite.expires_at > now)
        .values(expires_at=now)
    )
    if getattr(result, "rowcount", 0) != 1:
        db.rollback()
        raise Conflict("this invite is already used or expired", code="invite_not_open")
    chain.append(
        db,
        "invite_revoked",
        actor_id=actor_id,
        detail={"role": invite.role.value, "invite": invite.id},
    )
    db.commit()


def confirm_passphrase(db: Session, user: User, auth_key: bytes) -> None:
    """Check the signed-in admin's passphrase proof again; record the attempt (§25.1)."""
    from vault.accounts.services import verify_auth_key

    if not verify_auth_key(user.auth_hash, auth_key):
        chain.append(db, "reauth_failed", actor_id=user.id, subject_id=user.id)
        db.commit()
        raise Unauthorized("the passphrase is wrong", code="bad_credentials")
    chain.append(db, "reauth", actor_id=user.id, subject_id=user.id)
    db.commit()
