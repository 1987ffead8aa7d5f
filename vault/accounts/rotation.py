"""User key rotation (docs/protocol.md §14): new key pairs, every readable key re-sealed.

A user who lost a phone replaces their key pairs from another device. The client
re-seals every file key and message key it can read to the new keys and sends them in
one request; the server checks the set is exactly what the account can read, stores it,
publishes the new key, supersedes the old one and ends every other session, all in one
transaction. Nobody gains or loses access, and the server sees only sealed keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, insert, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from vault.accounts import passkeys, shares
from vault.accounts import services as accounts
from vault.accounts.models import KeyStatus, User, UserKey
from vault.audit import chain
from vault.contacts import services as contact_books
from vault.db import serialise_appends, utcnow
from vault.directory.services import ADVISORY_LOCK_ID
from vault.documents.models import Document, Grant
from vault.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from vault.keyring import Keyring
from vault.messages.models import Conversation, ConversationMember, Message, MessageReseal
from vault.protocol import documents as pdoc
from vault.protocol import keys as pkeys
from vault.protocol import messages as pmsg
from vault.protocol.encoding import b64decode


@dataclass(frozen=True)
class SealedMessage:
    """A message the account can read, with the message key as currently sealed to it."""

    id: str
    conversation_id: str
    key_version: int
    sealed_key: bytes


@dataclass(frozen=True)
class ResealSet:
    """Everything an account must re-seal to rotate (§14 step 1)."""

    key_version: int
    documents: dict[str, bytes]
    messages: list[SealedMessage]


@dataclass(frozen=True)
class Rotation:
    """What a client sends to rotate: §14 step 4."""

    current_auth_key: bytes
    public_keys: pkeys.PublicKeys
    passphrase: accounts.NewPassphrase
    recovery_auth_key: bytes
    recovery_wrapped_keys: bytes
    documents: Mapping[str, bytes]
    messages: Mapping[str, bytes]
    # The contact book re-encrypted under v+1 (§16) as (counter, blob), stored atomically.
    contact_book: tuple[int, bytes] | None = None


def _live(expires_at: InstrumentedAttribute[datetime | None], now: datetime) -> ColumnElement[bool]:
    return or_(expires_at.is_(None), expires_at > now)


def _owned(db: Session, user_id: str) -> dict[str, bytes]:
    rows = db.execute(
        select(Document.id, Document.owner_sealed_key).where(Document.owner_id == user_id)
    )
    return {doc_id: sealed for doc_id, sealed in rows}


def _granted(db: Session, user_id: str, now: datetime) -> dict[str, tuple[int, bytes]]:
    rows = db.execute(
        select(Grant.document_id, Grant.id, Grant.sealed_key).where(
            Grant.grantee_id == user_id, _live(Grant.expires_at, now)
        )
    )
    return {doc_id: (grant_id, sealed) for doc_id, grant_id, sealed in rows}


def _sealed_messages(db: Session, user_id: str, now: datetime) -> list[SealedMessage]:
    """Live messages sealed to the account, each with its reseal if it has one."""
    query = (
        select(
            Message.id,
            Message.conversation_id,
            Message.recipients,
            MessageReseal.key_version,
            MessageReseal.sealed_key,
        )
        .join(
            ConversationMember,
            and_(
                ConversationMember.conversation_id == Message.conversation_id,
                ConversationMember.user_id == user_id,
            ),
        )
        .outerjoin(
            MessageReseal,
            and_(MessageReseal.message_id == Message.id, MessageReseal.user_id == user_id),
        )
        .where(Message.deleted_at.is_(None), _live(Message.expires_at, now))
        .order_by(Message.conversation_id, Message.seq)
    )
    out = []
    for mid, conversation_id, recipients, reseal_version, reseal_key in db.execute(query):
        if reseal_key is not None:
            out.append(SealedMessage(mid, conversation_id, reseal_version, reseal_key))
            continue
        mine = next((r for r in recipients or () if r["user_id"] == user_id), None)
        if mine is not None:
            sealed = b64decode(mine["sealed_key"])
            out.append(SealedMessage(mid, conversation_id, int(mine["key_version"]), sealed))
    return out


def _lock_account(db: Session, user_id: str, freeze_until: datetime | None) -> User:
    """Lock the account's row (setting its freeze) and then its conversations' rows in id
    order; on SQLite the first write takes the database. A send takes its conversation's
    row before it re-reads its recipients (§9.5), and a grant re-reads its reader under a
    share lock on the reader's row, so neither can slip a key sealed to the old version
    past what is read after this."""
    db.execute(
        update(User)
        .where(User.id == user_id)
        .values(rotation_freeze_until=freeze_until)
        .execution_options(synchronize_session=False)
    )
    user = db.get(User, user_id, populate_existing=True)
    if user is None:
        raise NotFound("no such account")
    mine = select(ConversationMember.conversation_id).where(ConversationMember.user_id == user_id)
    db.execute(
        select(Conversation.id)
        .where(Conversation.id.in_(mine))
        .order_by(Conversation.id)
        .with_for_update()
    ).all()
    return user


def begin(db: Session, user_id: str, freeze: timedelta) -> ResealSet:
    """Start preparing a rotation: freeze the account, so nothing new is sealed to it for
    ``freeze``, and return every file key and message key it can read as sealed now."""
    accounts.refuse_decoy(db, user_id)
    now = utcnow()
    serialise_appends(db, chain.ADVISORY_LOCK_ID)  # first, as in rotate()
    user = _lock_account(db, user_id, now + freeze)
    documents = _owned(db, user.id)
    documents |= {doc_id: sealed for doc_id, (_, sealed) in _granted(db, user.id, now).items()}
    found = ResealSet(user.key_version, documents, _sealed_messages(db, user.id, now))
    chain.append(db, "key_rotation_started", actor_id=user.id, subject_id=user.id)
    db.commit()
    return found


def _check_shapes(rotation: Rotation, username: str, new_version: int) -> None:
    """Every check that needs neither the database nor a lock."""
    try:
        rotation.public_keys.verify(username)
    except pkeys.ProtocolError as exc:
        raise InvalidRequest(str(exc)) from exc
    accounts.check_new_passphrase(rotation.passphrase)
    if len(rotation.recovery_auth_key) != 32:
        raise InvalidRequest("recovery_auth_key must be 32 bytes")
    if len(rotation.recovery_wrapped_keys) != pkeys.WRAPPED_BUNDLE_BYTES:
        raise InvalidRequest("recovery_wrapped_keys has the wrong length")
    for doc_id, sealed in rotation.documents.items():
        try:
            version = pdoc.sealed_key_version(sealed)
        except pkeys.ProtocolError as exc:
            raise InvalidRequest(f"document {doc_id}: {exc}", code="invalid_field") from exc
        if version != new_version:
            raise InvalidRequest(
                f"document {doc_id}: seal the file key to key version {new_version}",
                code="invalid_field",
            )
    for mid, sealed in rotation.messages.items():
        if len(sealed) != pmsg.SEALED_KEY_BYTES or sealed[0] != pmsg.FORMAT_V1:
            raise InvalidRequest(
                f"message {mid}: a sealed key has the wrong format", code="invalid_field"
            )
    if rotation.contact_book is not None:
        counter, blob = rotation.contact_book
        contact_books.check_blob(blob, counter, new_version)


def _stale(version: int, user: User) -> Conflict:
    return Conflict(
        f"publish key version {user.key_version + 1}, not {version}; fetch your account again",
        code="stale_key_version",
    )


def rotate(
    db: Session, ring: Keyring, cost: accounts.HashCost, user_id: str, rotation: Rotation
) -> User:
    """Replace the account's key pairs and every sealed key it holds, in one transaction."""
    accounts.refuse_decoy(db, user_id)
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("no such account")
    new_version = rotation.public_keys.version
    if new_version != user.key_version + 1:
        raise _stale(new_version, user)
    _check_shapes(rotation, accounts.display_name(ring, user), new_version)
    if not accounts.verify_auth_key(user.auth_hash, rotation.current_auth_key):
        chain.append(db, "key_rotation_failed", actor_id=user.id, subject_id=user.id, ring=ring)
        db.commit()
        raise Unauthorized("the current passphrase is wrong", code="bad_credentials")
    # The slow hashing happens before any lock is taken.
    auth_hash = accounts.hash_auth_key(rotation.passphrase.auth_key, cost)
    recovery_hash = accounts.hash_auth_key(rotation.recovery_auth_key, cost)

    # Locks, always in this order: the key log's and the audit chain's append locks (a
    # grant holds the chain's before it share-locks its reader), the account's row
    # (clearing its freeze), the rows of its conversations in id order.
    serialise_appends(db, ADVISORY_LOCK_ID)
    serialise_appends(db, chain.ADVISORY_LOCK_ID)
    user = _lock_account(db, user_id, None)
    if new_version != user.key_version + 1:
        raise _stale(new_version, user)
    now = utcnow()
    owned = _owned(db, user.id)
    granted = _granted(db, user.id, now)
    readable = {m.id for m in _sealed_messages(db, user.id, now)}
    # Ids no longer readable (deleted or expired since the set was read) are ignored;
    # anything readable that was not re-sealed sends the client back for the set.
    if not (set(owned) | set(granted)) <= set(rotation.documents) or not readable <= set(
        rotation.messages
    ):
        db.rollback()
        raise Conflict(
            "what this account can read changed while the keys were being re-sealed; "
            "fetch the set again and retry",
            code="reseal_set_changed",
        )

    if rotation.contact_book is not None:
        try:
            contact_books.store_book(db, user.id, *rotation.contact_book)
        except Conflict:
            db.rollback()
            raise

    if owned:
        db.execute(
            update(Document),
            [{"id": i, "owner_sealed_key": rotation.documents[i]} for i in owned],
        )
    if granted:
        db.execute(
            update(Grant),
            [
                {"id": grant_id, "key_version": new_version, "sealed_key": rotation.documents[d]}
                for d, (grant_id, _) in granted.items()
            ],
        )
    db.execute(delete(MessageReseal).where(MessageReseal.user_id == user.id))
    if readable:
        db.execute(
            insert(MessageReseal),
            [
                {"message_id": m, "user_id": user.id, "key_version": new_version, "sealed_key": k}
                for m, k in rotation.messages.items()
                if m in readable
            ],
        )

    old_key = accounts.current_keys(user)
    if old_key.status == KeyStatus.CURRENT:
        old_key.status = KeyStatus.SUPERSEDED
    pk = rotation.public_keys
    new_key = UserKey(
        version=new_version,
        x25519=pk.x25519,
        ed25519=pk.ed25519,
        signature=pk.signature,
        status=KeyStatus.CURRENT,
    )
    user.keys.append(new_key)
    user.key_version = new_version
    accounts.set_passphrase(user, rotation.passphrase, auth_hash)
    user.recovery_auth_hash = recovery_hash
    user.recovery_wrapped_keys = rotation.recovery_wrapped_keys
    shares.forget_setup(db, user.id)  # its shares rebuild the old recovery key (§22)
    # PRF-wrapped copies hold the old key pairs: those passkeys stay second factors only.
    passkeys.forget_unlocks(db, user.id)
    db.flush()
    accounts.publish_key(db, ring, new_key)
    accounts.publish_key(db, ring, old_key, kind="supersede")
    chain.append(
        db,
        "keys_rotated",
        actor_id=user.id,
        subject_id=user.id,
        detail={
            "from": new_version - 1,
            "to": new_version,
            "documents": len(owned) + len(granted),
            "messages": len(readable),
        },
        ring=ring,
    )
    db.commit()
    return user
