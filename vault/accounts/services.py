"""Account operations: invites, registration, login, recovery, passphrase change.

The server only ever receives the authentication subkey (never the passphrase, the
master key or the wrap subkey) and stores an Argon2id hash of it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import nacl.exceptions
import nacl.hash
import nacl.pwhash
import nacl.utils
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, object_session

from vault import clock
from vault.accounts.models import (
    DuressLink,
    Invite,
    KeyStatus,
    Role,
    User,
    UserKey,
    session_identity,
)
from vault.audit import chain
from vault.audit import services as events
from vault.audit.models import EventKind
from vault.cases.models import Case, CaseMember
from vault.db import utcnow
from vault.directory import services as directory
from vault.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from vault.keyring import Keyring
from vault.protocol import keys as pkeys
from vault.protocol import serverdata
from vault.protocol import transparency as kt
from vault.protocol.kdf import KdfParams, WeakParameters

INVITE_TOKEN_BYTES = 32
BAD_CREDENTIALS = "username or passphrase is wrong"


@dataclass(frozen=True)
class HashCost:
    """Server-side Argon2id cost for hashing authentication subkeys."""

    opslimit: int
    memlimit: int


@dataclass(frozen=True)
class NewPassphrase:
    """What a client sends when it sets a passphrase: KDF params, auth subkey, wrapped keys."""

    kdf: KdfParams
    auth_key: bytes
    wrapped_keys: bytes


@dataclass(frozen=True)
class Registration:
    """Everything a client sends to create its account."""

    invite_token: bytes
    username: str
    passphrase: NewPassphrase
    recovery_auth_key: bytes
    recovery_wrapped_keys: bytes
    public_keys: pkeys.PublicKeys


def token_hash(token: bytes) -> bytes:
    """Hash of an invite token as stored."""
    return nacl.hash.blake2b(token, digest_size=32, encoder=nacl.encoding.RawEncoder)


def hash_auth_key(auth_key: bytes, cost: HashCost) -> str:
    """Argon2id-hash an authentication subkey for storage."""
    return nacl.pwhash.argon2id.str(
        auth_key, opslimit=cost.opslimit, memlimit=cost.memlimit
    ).decode()


def verify_auth_key(stored: str, auth_key: bytes) -> bool:
    """Check an authentication subkey against its stored Argon2id hash."""
    try:
        return nacl.pwhash.verify(stored.encode(), auth_key)
    except nacl.exceptions.InvalidkeyError:
        return False


@functools.cache
def _decoy_hash(opslimit: int, memlimit: int) -> str:
    return hash_auth_key(nacl.utils.random(32), HashCost(opslimit, memlimit))


def decoy_hash(cost: HashCost) -> str:
    """A hash of a random subkey: the same verification work where nothing matches."""
    return _decoy_hash(cost.opslimit, cost.memlimit)


def display_name(ring: Keyring, user: User) -> str:
    """Decrypt the account's username with the data key version it names."""
    version = serverdata.sealed_version(user.username_sealed)
    return serverdata.open_identifier(ring.get("data", version), "username", user.username_sealed)


def _lookups(ring: Keyring, username: str) -> list[bytes]:
    return [serverdata.lookup_hash(ring.get("data", v), username) for v in ring.versions("data")]


def find_user(db: Session, ring: Keyring, username: str) -> User | None:
    """The account with this username, if any, under any live data key version."""
    try:
        name = pkeys.normalize_username(username)
    except pkeys.ProtocolError:
        return None
    return db.scalars(select(User).where(User.username_lookup.in_(_lookups(ring, name)))).first()


def create_invite(
    db: Session, role: Role, created_by: User | None, hours: int
) -> tuple[Invite, bytes]:
    """Create a one-time invite; return it and the token, which is never stored."""
    if created_by is not None:
        if created_by.role == Role.COUNSEL and role != Role.SURVIVOR:
            raise Forbidden("counsel may invite survivors only")
        if created_by.role == Role.SURVIVOR:
            raise Forbidden("survivors cannot invite")
        if created_by.role == Role.ADMIN and role == Role.SURVIVOR:
            raise Forbidden("survivors are invited by their counsel, which opens their case")
    token = nacl.utils.random(INVITE_TOKEN_BYTES)
    invite = Invite(
        token_hash=token_hash(token),
        role=role,
        created_by=created_by.id if created_by else None,
        expires_at=utcnow() + timedelta(hours=hours),
    )
    db.add(invite)
    db.flush()
    chain.append(
        db,
        "invite_created",
        actor_id=created_by.id if created_by else None,
        detail={"role": role.value, "invite": invite.id},
    )
    db.commit()
    return invite, token


def prelogin(db: Session, ring: Keyring, username: str) -> KdfParams:
    """KDF parameters for a username; a stable decoy for names with no account."""
    user = find_user(db, ring, username)
    if user is not None:
        return KdfParams(user.kdf_salt, user.kdf_opslimit, user.kdf_memlimit)
    name = username.strip().lower()
    return KdfParams(serverdata.decoy_salt(ring.current("data"), name))


def check_new_passphrase(new: NewPassphrase) -> None:
    """Refuse weak KDF parameters and wrong lengths."""
    try:
        new.kdf.check()
    except WeakParameters as exc:
        raise InvalidRequest(str(exc), code="weak_kdf_parameters") from exc
    if len(new.auth_key) != 32:
        raise InvalidRequest("auth_key must be 32 bytes")
    if len(new.wrapped_keys) != pkeys.WRAPPED_BUNDLE_BYTES:
        raise InvalidRequest("wrapped_keys has the wrong length")


def register(db: Session, ring: Keyring, cost: HashCost, reg: Registration) -> User:
    """Redeem an invite and create the account it was for, in one transaction."""
    try:
        username = pkeys.normalize_username(reg.username)
        reg.public_keys.verify(username)
    except pkeys.ProtocolError as exc:
        raise InvalidRequest(str(exc)) from exc
    if reg.public_keys.version != 1:
        raise InvalidRequest("a new account publishes key version 1")
    check_new_passphrase(reg.passphrase)
    if len(reg.recovery_auth_key) != 32:
        raise InvalidRequest("recovery_auth_key must be 32 bytes")
    if len(reg.recovery_wrapped_keys) != pkeys.WRAPPED_BUNDLE_BYTES:
        raise InvalidRequest("recovery_wrapped_keys has the wrong length")
    invite = db.scalars(
        select(Invite).where(Invite.token_hash == token_hash(reg.invite_token))
    ).first()
    now = utcnow()
    if invite is None or invite.redeemed_at is not None or invite.expires_at <= now:
        raise InvalidRequest(
            "this invite is not valid: used, expired or unknown", code="invite_invalid"
        )
    if find_user(db, ring, username) is not None:
        raise Conflict("this username is taken", code="username_taken")
    data_version = ring.current_version("data")
    data_key = ring.current("data")
    user = User(
        role=invite.role,
        username_lookup=serverdata.lookup_hash(data_key, username),
        lookup_key_version=data_version,
        username_sealed=serverdata.seal_identifier(data_key, data_version, "username", username),
        data_key_version=data_version,
        kdf_salt=reg.passphrase.kdf.salt,
        kdf_opslimit=reg.passphrase.kdf.opslimit,
        kdf_memlimit=reg.passphrase.kdf.memlimit,
        auth_hash=hash_auth_key(reg.passphrase.auth_key, cost),
        recovery_auth_hash=hash_auth_key(reg.recovery_auth_key, cost),
        wrapped_keys=reg.passphrase.wrapped_keys,
        recovery_wrapped_keys=reg.recovery_wrapped_keys,
        key_version=1,
        session_version=1,
    )
    user.keys.append(
        UserKey(
            version=1,
            x25519=reg.public_keys.x25519,
            ed25519=reg.public_keys.ed25519,
            signature=reg.public_keys.signature,
            status=KeyStatus.CURRENT,
        )
    )
    db.add(user)
    db.flush()
    publish_key(db, ring, user.keys[0])
    # Redeem atomically: a concurrent redemption of the same token updates no row.
    result = db.execute(
        update(Invite)
        .where(Invite.id == invite.id, Invite.redeemed_at.is_(None), Invite.expires_at > now)
        .values(redeemed_at=now, redeemed_by=user.id)
    )
    claimed = getattr(result, "rowcount", 0)
    if claimed != 1:
        db.rollback()
        raise InvalidRequest(
            "this invite is not valid: used, expired or unknown", code="invite_invalid"
        )
    case_id: str | None = None
    if invite.role == Role.SURVIVOR and invite.created_by is not None:
        case = Case(survivor_id=user.id)
        case.members.append(CaseMember(user_id=user.id, role=Role.SURVIVOR))
        case.members.append(
            CaseMember(user_id=invite.created_by, role=Role.COUNSEL, added_by=invite.created_by)
        )
        db.add(case)
        db.flush()
        case_id = case.id
    chain.append(
        db,
        "account_created",
        actor_id=user.id,
        subject_id=user.id,
        case_id=case_id,
        detail={"role": user.role.value, "invite": invite.id},
        ring=ring,
    )
    db.commit()
    return user


def publish_key(db: Session, ring: Keyring, key: UserKey, kind: str = "publish") -> int:
    """Append a key event to the transparency log inside the caller's transaction."""
    now_ms = int(clock.time() * 1000)
    entry = kt.KeyEntry(
        kind, key.user_id, key.version, key.x25519, key.ed25519, key.signature, now_ms
    )
    index = directory.append(db, ring, entry)
    chain.append(
        db,
        f"key_{kind}",
        subject_id=key.user_id,
        detail={"version": key.version, "log_index": index},
        ring=ring,
    )
    if kind == "publish":
        key.log_index = index
        key.logged_at_ms = now_ms
    return index


def authenticate(
    db: Session, ring: Keyring, cost: HashCost, username: str, auth_key: bytes
) -> User:
    """Check an authentication subkey against the passphrase and the duress passphrase.

    Both verifiers are always checked, with decoy hashes standing in for an unknown name or
    an account without a duress passphrase, so the work is the same whichever matches
    (protocol §18). A duress match returns the hidden decoy account.
    """
    user = find_user(db, ring, username)
    link = db.get(DuressLink, user.id) if user is not None else None
    decoy = db.get(User, link.decoy_id) if link is not None else None
    fallback = _decoy_hash(cost.opslimit, cost.memlimit)
    is_valid = verify_auth_key(user.auth_hash if user is not None else fallback, auth_key)
    is_duress = verify_auth_key(decoy.auth_hash if decoy is not None else fallback, auth_key)
    if user is None or user.is_disabled or not (is_valid or (is_duress and decoy is not None)):
        chain.append(db, "login_failed", subject_id=user.id if user else None, ring=ring)
        db.commit()
        raise Unauthorized(BAD_CREDENTIALS, code="bad_credentials")
    if not is_valid and link is not None and decoy is not None:
        if link.is_alerting:
            _alert_counsel(db, user.id)
        chain.append(db, "login", actor_id=decoy.id, subject_id=decoy.id, ring=ring)
        db.commit()
        return decoy
    chain.append(db, "login", actor_id=user.id, subject_id=user.id, ring=ring)
    db.commit()
    return user


def _alert_counsel(db: Session, survivor_id: str) -> None:
    """A duress_alert event in each of the survivor's real cases, seen by their counsel."""
    for case_id in db.scalars(select(Case.id).where(Case.survivor_id == survivor_id)):
        events.record(db, EventKind.DURESS_ALERT, case_id=case_id, subject_id=survivor_id)


def is_decoy(db: Session, user_id: str) -> bool:
    """Whether an account is the hidden decoy of another account's duress passphrase."""
    return db.scalar(select(DuressLink.user_id).where(DuressLink.decoy_id == user_id)) is not None


def survivor_own_account(db: Session, user_id: str, refusal: str) -> User:
    """A survivor's real account (not a decoy); 403 with ``refusal`` for anyone else."""
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("no such account")
    if user.role != Role.SURVIVOR or is_decoy(db, user_id):
        raise Forbidden(refusal)
    return user


def refuse_decoy(db: Session, user_id: str) -> None:
    """A decoy's passphrase and keys belong to its owner's setting: no change from inside."""
    if is_decoy(db, user_id):
        raise Forbidden("this account cannot change its passphrase or keys")


def forget_duress(db: Session, user_id: str) -> bool:
    """Turn the account's duress passphrase off and delete its decoy with all it holds.

    The decoy's stored objects lose their rows and go with the janitor's orphan sweep.
    """
    from vault.documents.models import Document

    link = db.get(DuressLink, user_id)
    if link is None:
        return False
    decoy_id = link.decoy_id
    db.delete(link)
    db.flush()
    db.execute(delete(Document).where(Document.owner_id == decoy_id))
    db.execute(delete(Case).where(Case.survivor_id == decoy_id))
    decoy = db.get(User, decoy_id)
    if decoy is not None:
        db.delete(decoy)
    db.flush()
    return True


def authenticate_recovery(
    db: Session, ring: Keyring, cost: HashCost, username: str, recovery_auth_key: bytes
) -> User:
    """Check a recovery authentication subkey, with the same work for unknown usernames."""
    user = find_user(db, ring, username)
    stored = (
        user.recovery_auth_hash if user is not None else _decoy_hash(cost.opslimit, cost.memlimit)
    )
    is_valid = verify_auth_key(stored, recovery_auth_key)
    if user is None or not is_valid or user.is_disabled:
        chain.append(db, "recovery_failed", subject_id=user.id if user else None, ring=ring)
        db.commit()
        raise Unauthorized("username or recovery key is wrong", code="bad_credentials")
    return user


def set_passphrase(user: User, new: NewPassphrase, auth_hash: str) -> None:
    """Store a new passphrase's parameters, hash and wrapped keys; end every session.

    A duress passphrase was derived with the old salt and can no longer match: it is turned
    off and its decoy deleted (protocol §18.6).
    """
    db = object_session(user)
    if db is not None:
        forget_duress(db, user.id)
    user.kdf_salt = new.kdf.salt
    user.kdf_opslimit = new.kdf.opslimit
    user.kdf_memlimit = new.kdf.memlimit
    user.auth_hash = auth_hash
    user.wrapped_keys = new.wrapped_keys
    user.session_version += 1


def recover(
    db: Session,
    ring: Keyring,
    cost: HashCost,
    username: str,
    recovery_auth_key: bytes,
    new: NewPassphrase,
) -> User:
    """Set a new passphrase after proving the recovery key; ends every session."""
    check_new_passphrase(new)
    user = authenticate_recovery(db, ring, cost, username, recovery_auth_key)
    set_passphrase(user, new, hash_auth_key(new.auth_key, cost))
    chain.append(db, "recovery", actor_id=user.id, subject_id=user.id, ring=ring)
    from vault.accounts import shares  # split recovery builds on this module

    shares.close_on_recovery(db, user.id)
    db.commit()
    return user


def change_passphrase(
    db: Session, cost: HashCost, user_id: str, current_auth_key: bytes, new: NewPassphrase
) -> User:
    """Re-wrap under a new passphrase after proving the current one; ends every session."""
    check_new_passphrase(new)
    refuse_decoy(db, user_id)
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("no such account")
    if not verify_auth_key(user.auth_hash, current_auth_key):
        chain.append(db, "passphrase_change_failed", actor_id=user.id, subject_id=user.id)
        db.commit()
        raise Unauthorized("the current passphrase is wrong", code="bad_credentials")
    set_passphrase(user, new, hash_auth_key(new.auth_key, cost))
    chain.append(db, "passphrase_changed", actor_id=user.id, subject_id=user.id)
    db.commit()
    return user


def end_sessions(db: Session, user_id: str) -> None:
    """Invalidate every session of an account on the server side."""
    db.execute(
        update(User).where(User.id == user_id).values(session_version=User.session_version + 1)
    )
    chain.append(db, "logout", actor_id=user_id, subject_id=user_id)
    db.commit()


def valid_session_ids(db: Session, user_ids: Iterable[str]) -> dict[str, str]:
    """Each account's valid session identity ('id:version'), load_session_user's rule; an
    account with none valid (disabled or gone) is left out."""
    # Two columns, not the accounts' rows: streams ask this on every read they make.
    rows = db.execute(
        select(User.id, User.session_version).where(
            User.id.in_(list(user_ids)), User.is_disabled.is_(False)
        )
    )
    return {user_id: session_identity(user_id, version) for user_id, version in rows}


def load_session_user(db: Session, session_id: str) -> User | None:
    """The account for a session identity 'id:version', if that session is still valid."""
    user_id, _, version = session_id.partition(":")
    if not version.isdigit():
        return None
    user = db.get(User, user_id)
    if user is None or user.is_disabled or user.session_version != int(version):
        return None
    return user


def current_keys(user: User) -> UserKey:
    """The account's current published key version."""
    for key in user.keys:
        if key.version == user.key_version:
            return key
    raise NotFound("account has no current key")


def sealable_versions(
    db: Session, user_ids: list[str], *, lock: bool = False
) -> dict[str, int | None]:
    """Current key versions of some accounts, read fresh, or None for an account that is
    preparing a key rotation (nothing may be sealed to it until it is done). ``lock``
    takes a share lock on their rows (PostgreSQL) so a rotation waits for this
    transaction."""
    query = select(User.id, User.key_version, User.rotation_freeze_until).where(
        User.id.in_(user_ids)
    )
    if lock:
        query = query.with_for_update(read=True)
    return sealable(db.execute(query), utcnow())


def sealable(rows: Iterable[Any], now: datetime) -> dict[str, int | None]:
    """(id, key version, freeze) rows as {id: version, or None while frozen}."""
    return {
        uid: None if frozen is not None and frozen > now else int(version)
        for uid, version, frozen in rows
    }


def frozen_error() -> Conflict:
    """The refusal for sealing anything to an account preparing a key rotation."""
    return Conflict(
        "someone here is replacing their keys; try again in a minute", code="keys_rotating"
    )


def count_users(db: Session) -> int:
    """How many accounts exist."""
    return int(db.scalar(select(func.count()).select_from(User)) or 0)
