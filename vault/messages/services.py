"""Messaging operations: conversations, sending, listing, deleting, timers, read markers.

The server never sees a message key or text. Before storing an envelope it checks what
it can: the sender is a current member signing as themselves with their current key, the
recipients are exactly the conversation's current members at their current key versions,
the header names this conversation and its timer, and the signature verifies against the
sender's published key. Every change appends an event (ids only) for server-sent events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vault.accounts import services as accounts
from vault.accounts.models import KeyStatus, Role, User, UserKey, session_identity
from vault.cases.models import Case, CaseMember
from vault.db import utcnow
from vault.errors import Conflict, Forbidden, HavenError, InvalidRequest, NotFound
from vault.messages import attachments
from vault.messages import statements as sql
from vault.messages.models import (
    Conversation,
    ConversationMember,
    EventKind,
    Message,
    MessageClock,
    MessageEvent,
    MessageReseal,
)
from vault.protocol import keys as pkeys
from vault.protocol import messages as pmsg
from vault.protocol.encoding import b64encode

CLOCK_ID = sql.CLOCK_ID
MAX_PAGE = 200
PURGE_BATCH = 500


class TooLarge(HavenError):
    """The message body is larger than the server accepts."""

    status = 413
    code = "message_too_large"


class Notifier(Protocol):
    """Wakes the event streams of some accounts (see vault.messages.fanout)."""

    def publish(self, user_ids: Iterable[str]) -> None:
        """Tell every app process that these accounts have new events."""


@dataclass(frozen=True)
class SendRules:
    """Server-side limits on an envelope."""

    max_body: int
    clock_skew: timedelta
    max_age: timedelta


@dataclass(frozen=True)
class Member:
    """A current member of a conversation with the published keys senders must use."""

    user: User
    role: Role
    key: UserKey


@dataclass(frozen=True)
class ConversationView:
    """A conversation as one member sees it."""

    conversation: Conversation
    member_ids: list[str]
    last_read_seq: int
    unread: int
    last_activity_at: datetime


# -- membership -------------------------------------------------------------------------


@dataclass(frozen=True)
class Membership:
    """A signed-in account's place in a conversation (checked against the case too), and,
    when asked for, every current member's current keys."""

    user: User
    conversation: Conversation
    keys: dict[str, MemberKey] | None = None


def membership(
    db: Session, user: User, conversation_id: str, *, with_keys: bool = False
) -> Membership:
    """The caller's membership; NotFound unless they are in the conversation and its case."""
    if with_keys:
        keys, conversation = _member_keys(db, conversation_id)
        if conversation is None or user.id not in keys:
            raise NotFound("no such conversation")
        return Membership(user, conversation, keys)
    params = {"conversation_id": conversation_id, "user_id": user.id}
    found = db.scalars(sql.MEMBERSHIP, params).first()
    if found is None:
        raise NotFound("no such conversation")
    return Membership(user, found)


@dataclass(frozen=True)
class MemberKey:
    """What a sender must seal to: a current member's current key version and its status."""

    user_id: str
    key_version: int
    status: KeyStatus
    public: pkeys.PublicKeys


def _member_keys(
    db: Session, conversation_id: str
) -> tuple[dict[str, MemberKey], Conversation | None]:
    """A conversation and its current members (still in the case) with their current keys,
    in one read."""
    rows = db.execute(sql.MEMBER_KEYS, {"conversation_id": conversation_id}).all()
    keys = {
        uid: MemberKey(uid, version, status, pkeys.PublicKeys(version, x, ed, sig))
        for _, uid, version, status, x, ed, sig in rows
    }
    return keys, rows[0][0] if rows else None


def current_members(db: Session, conversation: Conversation) -> list[Member]:
    """Members still in the conversation's case, with their current published keys."""
    query = (
        select(User, CaseMember.role, UserKey)
        .join(ConversationMember, ConversationMember.user_id == User.id)
        .join(
            CaseMember,
            and_(
                CaseMember.user_id == User.id,
                CaseMember.case_id == conversation.case_id,
            ),
        )
        .join(UserKey, and_(UserKey.user_id == User.id, UserKey.version == User.key_version))
        .where(ConversationMember.conversation_id == conversation.id)
        .order_by(User.id)
    )
    return [Member(user, role, key) for user, role, key in db.execute(query)]


# -- conversations ----------------------------------------------------------------------


def create_conversation(
    db: Session,
    notifier: Notifier,
    user: User,
    case_id: str,
    other_ids: Sequence[str],
    *,
    ttl: int = 0,
) -> Conversation:
    """Open a conversation in a case (the caller, the survivor, chosen counsel) with a timer."""
    if db.get(CaseMember, (case_id, user.id)) is None:
        raise NotFound("no such case")
    case = db.get(Case, case_id)
    assert case is not None
    wanted = {user.id, *other_ids}
    if len(wanted) != len(other_ids) + 1:
        raise InvalidRequest("list each other member once, without yourself")
    if len(wanted) < 2:
        raise InvalidRequest("a conversation needs at least one other member")
    if len(wanted) > pmsg.MAX_RECIPIENTS:
        raise InvalidRequest(f"a conversation has at most {pmsg.MAX_RECIPIENTS} members")
    in_case = set(
        db.scalars(
            select(CaseMember.user_id).where(
                CaseMember.case_id == case_id, CaseMember.user_id.in_(wanted)
            )
        )
    )
    if in_case != wanted:
        raise InvalidRequest("every member must belong to the case", code="not_case_members")
    if case.survivor_id not in wanted:
        raise InvalidRequest("the case's survivor takes part in every conversation")
    conversation = Conversation(case_id=case_id, created_by=user.id, ttl=ttl, last_seq=0)
    now = utcnow()
    for member_id in sorted(wanted):
        conversation.members.append(ConversationMember(user_id=member_id, joined_at=now))
    db.add(conversation)
    db.flush()
    _append_event(db, conversation.id, EventKind.CONVERSATION)
    db.commit()
    notifier.publish(wanted)
    return conversation


def list_conversations(
    db: Session, user: User, conversation_id: str | None = None
) -> list[ConversationView]:
    """The caller's conversations (or one of them), latest activity first, with unread counts."""
    now = utcnow()
    query = (
        select(Conversation, ConversationMember.last_read_seq)
        .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
        .join(
            CaseMember,
            and_(CaseMember.case_id == Conversation.case_id, CaseMember.user_id == user.id),
        )
        .where(ConversationMember.user_id == user.id)
    )
    if conversation_id is not None:
        query = query.where(Conversation.id == conversation_id)
    rows = db.execute(query).all()
    if not rows:
        return []
    ids = [c.id for c, _ in rows]
    activity_query = (
        select(
            Message.conversation_id,
            func.max(Message.received_at),
            func.count().filter(
                Message.seq > ConversationMember.last_read_seq,
                Message.sender_id != user.id,
                Message.deleted_at.is_(None),
            ),
        )
        .join(
            ConversationMember,
            and_(
                ConversationMember.conversation_id == Message.conversation_id,
                ConversationMember.user_id == user.id,
            ),
        )
        .where(Message.conversation_id.in_(ids), _live(now))
        .group_by(Message.conversation_id)
    )
    activity: dict[str, tuple[datetime, int]] = {}
    for cid, latest, unread in db.execute(activity_query):
        activity[cid] = (latest, int(unread))
    members: dict[str, list[str]] = {}
    member_query = (
        select(ConversationMember.conversation_id, ConversationMember.user_id)
        .join(Conversation, Conversation.id == ConversationMember.conversation_id)
        .join(
            CaseMember,
            and_(
                CaseMember.case_id == Conversation.case_id,
                CaseMember.user_id == ConversationMember.user_id,
            ),
        )
        .where(ConversationMember.conversation_id.in_(ids))
        .order_by(ConversationMember.user_id)
    )
    for cid, uid in db.execute(member_query):
        members.setdefault(cid, []).append(uid)
    views = []
    for conversation, read in rows:
        latest, unread = activity.get(conversation.id, (conversation.created_at, 0))
        views.append(
            ConversationView(conversation, members.get(conversation.id, []), read, unread, latest)
        )
    views.sort(key=lambda v: (v.last_activity_at, v.conversation.id), reverse=True)
    return views


def conversation_view(db: Session, user: User, conversation_id: str) -> ConversationView:
    """One conversation as the caller sees it."""
    views = list_conversations(db, user, conversation_id)
    if not views:
        raise NotFound("no such conversation")
    return views[0]


def set_timer(db: Session, notifier: Notifier, place: Membership, seconds: int) -> Conversation:
    """Set the disappearing-message timer (any member); applies to messages sent after."""
    if seconds not in pmsg.TIMERS:
        raise InvalidRequest(f"seconds must be one of {list(pmsg.TIMERS)}", code="invalid_timer")
    conversation = _lock_conversation(db, place.conversation.id)
    if conversation.ttl != seconds:
        conversation.ttl = seconds
        conversation.ttl_set_by = place.user.id
        conversation.ttl_set_at = utcnow()
        _append_event(db, conversation.id, EventKind.CONVERSATION)
        members = list(_member_keys(db, conversation.id)[0])
        db.commit()
        notifier.publish(members)
    else:
        db.commit()
    return conversation


def mark_read(db: Session, place: Membership, seq: int) -> int:
    """Move the caller's read marker forward (never back); return where it stands."""
    target = min(seq, place.conversation.last_seq)
    mine = and_(
        ConversationMember.conversation_id == place.conversation.id,
        ConversationMember.user_id == place.user.id,
    )
    db.execute(
        update(ConversationMember)
        .where(mine, ConversationMember.last_read_seq < target)
        .values(last_read_seq=target)
        .execution_options(synchronize_session=False)
    )
    marker = db.scalars(select(ConversationMember.last_read_seq).where(mine)).one()
    db.commit()
    return int(marker)


# -- messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredMessage:
    """A stored envelope (or the tombstone of a deleted one) with the server's fields."""

    id: str
    conversation_id: str
    seq: int
    sender_id: str
    sender_key_version: int
    sent_at: int
    ttl: int
    recipients: list[dict[str, Any]] | None
    attachments: list[str] | None
    body: bytes | None
    signature: bytes | None
    digest: bytes
    received_at: datetime
    expires_at: datetime | None
    deleted_at: datetime | None


assert tuple(f.name for f in fields(StoredMessage)) == sql.MESSAGE_FIELDS


def _stored(row: Any) -> StoredMessage:
    return StoredMessage(*row)


def _load_message(db: Session, message_id: str) -> StoredMessage | None:
    row = db.execute(sql.LOAD_MESSAGE, {"message_id": message_id}).first()
    return None if row is None else _stored(row)


def message_key(message_id: bytes) -> str:
    """How a message id is stored and shown: unpadded base64url."""
    return b64encode(message_id)


def send_message(
    db: Session,
    notifier: Notifier,
    place: Membership,
    envelope: pmsg.Envelope,
    rules: SendRules,
    attachment_keys: Sequence[attachments.AttachmentKey] = (),
) -> tuple[StoredMessage, bool]:
    """Check and store an envelope, and make the grants its attachments need, in one
    transaction; return it and whether it is new (False: a byte-identical retry)."""
    sender, conversation = place.user, place.conversation
    conversation_id = conversation.id
    header = envelope.header
    if header.conversation_id != conversation_id:
        raise InvalidRequest(
            "the envelope names another conversation", code="conversation_mismatch"
        )
    if header.sender_id != sender.id:
        raise Forbidden("you may only send as yourself", code="sender_mismatch")
    if len(envelope.body) > rules.max_body:
        raise TooLarge(f"the message body is larger than {rules.max_body} bytes")
    try:
        envelope.check()
    except pkeys.ProtocolError as exc:
        raise InvalidRequest(str(exc), code="invalid_envelope") from exc
    members = place.keys if place.keys is not None else _member_keys(db, conversation_id)[0]
    if sender.id not in members:
        raise NotFound("no such conversation")
    _verify_signature(db, members[sender.id], envelope)
    mid = message_key(header.message_id)
    digest = envelope.digest()
    now = utcnow()
    try:
        _check_sender_key(members[sender.id], header)
        _check_recipients(members, header)
        _check_timer(header.ttl, conversation.ttl)
        _check_clock(header.sent_at, rules)
        if attachment_keys and not header.attachments:
            raise InvalidRequest(
                "attachment keys without attachments", code="unexpected_attachment_key"
            )
        plans = attachments.plan_grants(
            db,
            sender,
            conversation.case_id,
            {uid: m.key_version for uid, m in members.items()},
            header.attachments,
            attachment_keys,
            now,
        )
    except HavenError:
        # A retry of a message stored before keys, members or the timer changed is
        # answered with what was stored, not refused.
        existing = _retry_of(db, mid, conversation_id, digest)
        if existing is not None:
            return existing, False
        raise
    values: dict[str, Any] = {
        "id": mid,
        "conversation_id": conversation_id,
        "sender_id": sender.id,
        "sender_key_version": header.sender_key_version,
        "sent_at": header.sent_at,
        "ttl": header.ttl,
        "recipients": [
            {"user_id": r.user_id, "key_version": r.key_version, "sealed_key": b64encode(k)}
            for r, k in zip(header.recipients, envelope.sealed_keys, strict=True)
        ],
        "attachments": list(header.attachments),
        "body": envelope.body,
        "signature": envelope.signature,
        "digest": digest,
        "received_at": now,
        "expires_at": now + timedelta(seconds=header.ttl) if header.ttl else None,
        "deleted_at": None,
    }
    try:
        seq = _insert_numbered(db, values)
        attachments.make_grants(db, sender, mid, plans, values["expires_at"], now)
    except IntegrityError as exc:
        db.rollback()
        existing = _retry_of(db, mid, conversation_id, digest)
        if existing is None:
            raise Conflict(
                "a grant of an attachment changed meanwhile; send again",
                code="attachment_conflict",
            ) from exc
        return existing, False
    _append_message_event(db, header, mid, seq)
    db.commit()
    notifier.publish(members)
    return StoredMessage(seq=seq, **values), True


def _append_message_event(db: Session, header: pmsg.Header, mid: str, seq: int) -> None:
    """Append the message's event and read the recipients' key versions again now that
    this transaction holds the conversation's row, which a key rotation (§14) of any
    member takes too: a rotation that committed since the members were read is caught
    here; one that comes later waits for this commit and re-seals this message.

    On PostgreSQL both are one statement, the last before COMMIT (so the event clock's
    lock spans one round trip less). It starts after the statement that took the row
    lock returned, so its snapshot (READ COMMITTED: one per statement) sees every
    rotation that committed while this send waited for the lock."""
    ids = [r.user_id for r in header.recipients]
    values = _event_values(header.conversation_id, EventKind.MESSAGE, mid, seq)
    if _is_postgresql(db):
        params = {f"e_{k}": v for k, v in values.items()} | {"ids": ids}
        found = db.execute(sql.APPEND_EVENT_AND_KEY_VERSIONS, params).all()
        _recheck_key_versions(db, header, [row[1:] for row in found if row[1] is not None])
        return
    _recheck_key_versions(db, header, db.execute(sql.KEY_VERSIONS, {"ids": ids}))
    seq = db.execute(sql.TICK).scalar_one()
    db.execute(sql.INSERT_EVENT, {**values, "seq": seq})


def _recheck_key_versions(db: Session, header: pmsg.Header, rows: Iterable[Any]) -> None:
    """Refuse (rolling back) unless the (id, key version, freeze) rows read under the
    conversation's row lock match every recipient's key version and none is frozen."""
    now = accounts.sealable(rows, utcnow())
    if any(now.get(r.user_id) != r.key_version for r in header.recipients):
        db.rollback()
        if any(now.get(r.user_id, 0) is None for r in header.recipients):
            raise accounts.frozen_error()
        raise Conflict(
            "a recipient's key version changed; fetch the conversation again",
            code="stale_key_version",
        )


def reseals_for(
    db: Session, user: User, message_ids: Sequence[str]
) -> dict[str, tuple[int, bytes]]:
    """The caller's re-sealed message keys among these messages (none before a rotation)."""
    if user.key_version == 1 or not message_ids:
        return {}
    rows = db.execute(sql.RESEALS, {"user_id": user.id, "ids": list(message_ids)})
    return {mid: (int(version), sealed) for mid, version, sealed in rows}


def _verify_signature(db: Session, sender: MemberKey, envelope: pmsg.Envelope) -> None:
    """Authenticity first: the signature must verify under the key version the header names."""
    version = envelope.header.sender_key_version
    public: pkeys.PublicKeys | None = sender.public
    if version != sender.key_version:
        key = db.scalars(
            select(UserKey).where(UserKey.user_id == sender.user_id, UserKey.version == version)
        ).first()
        public = (
            None
            if key is None
            else pkeys.PublicKeys(key.version, key.x25519, key.ed25519, key.signature)
        )
    if public is None:
        raise InvalidRequest("you have no published key of that version", code="bad_signature")
    try:
        envelope.verify(public)
    except pkeys.ProtocolError as exc:
        raise InvalidRequest(str(exc), code="bad_signature") from exc


def _check_timer(sent: int, current: int) -> None:
    if sent != current:
        raise Conflict("the conversation's timer changed; fetch it again", code="timer_changed")


def _retry_of(db: Session, mid: str, conversation_id: str, digest: bytes) -> StoredMessage | None:
    """The stored message if this is a byte-identical retry; Conflict if the id is taken."""
    existing = _load_message(db, mid)
    if existing is None:
        return None
    if existing.conversation_id == conversation_id and existing.digest == digest:
        return existing
    raise Conflict("this message id is already used by another message", code="message_id_conflict")


def _check_sender_key(member: MemberKey, header: pmsg.Header) -> None:
    if header.sender_key_version != member.key_version:
        raise Conflict(
            "sign with your current key version; fetch your account again",
            code="stale_key_version",
        )
    if member.status == KeyStatus.COMPROMISED:
        raise Conflict("your key is marked compromised; rotate it first", code="must_rotate_keys")


def _check_recipients(members: dict[str, MemberKey], header: pmsg.Header) -> None:
    named = {r.user_id for r in header.recipients}
    if named != set(members):
        raise InvalidRequest(
            "recipients must be exactly the conversation's current members",
            code="recipients_mismatch",
        )
    for r in header.recipients:
        current = members[r.user_id]
        if r.key_version != current.key_version:
            raise Conflict(
                "a recipient's key version is not current; fetch the conversation again",
                code="stale_key_version",
            )
        if current.status == KeyStatus.COMPROMISED:
            raise Conflict(
                "a recipient's key is marked compromised; wait until they rotate it",
                code="recipient_must_rotate",
            )


def _check_clock(sent_at: int, rules: SendRules) -> None:
    now_ms = int(utcnow().timestamp() * 1000)
    skew_ms = int(rules.clock_skew.total_seconds() * 1000)
    age_ms = int(rules.max_age.total_seconds() * 1000)
    if sent_at > now_ms + skew_ms:
        raise InvalidRequest("sent_at is in the future; check the device clock", code="clock_skew")
    if sent_at < now_ms - age_ms:
        raise InvalidRequest("sent_at is too far in the past", code="clock_skew")


def _live(now: datetime) -> Any:
    return or_(Message.expires_at.is_(None), Message.expires_at > now)


def list_messages(
    db: Session,
    user: User,
    conversation_id: str,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> tuple[list[StoredMessage], int | None]:
    """A page of messages newest first; the second value is the next page's ``before``.

    The membership check rides in the page query; only an empty page asks again whether
    the conversation is the caller's at all.
    """
    limit = max(1, min(limit, MAX_PAGE))
    shape = sql.PageShape(has_before=before is not None, has_after=after is not None)
    params = {
        "conversation_id": conversation_id,
        "user_id": user.id,
        "now": utcnow(),
        "limit": limit + 1,
        "before": before,
        "after": after,
    }
    rows = [_stored(r) for r in db.execute(sql.page(shape), params)]
    if not rows:
        membership(db, user, conversation_id)
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].seq
    return rows, None


def get_message(db: Session, user: User, conversation_id: str, message_id: str) -> StoredMessage:
    """One live message (or tombstone) of one of the caller's conversations."""
    membership(db, user, conversation_id)
    message = _load_message(db, message_id)
    if (
        message is None
        or message.conversation_id != conversation_id
        or (message.expires_at is not None and message.expires_at <= utcnow())
    ):
        raise NotFound("no such message")
    return message


def delete_message(
    db: Session, notifier: Notifier, user: User, conversation_id: str, message_id: str
) -> None:
    """Delete for everyone: drop the ciphertext, keep a tombstone. Only the sender may."""
    message = get_message(db, user, conversation_id, message_id)
    if message.sender_id != user.id:
        raise Forbidden("only the sender can delete a message for everyone")
    if message.deleted_at is not None:
        return
    erased = db.execute(
        update(Message)
        .where(Message.id == message.id, Message.deleted_at.is_(None))
        .values(deleted_at=utcnow(), body=None, signature=None, recipients=None, attachments=None)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(erased) == 1:
        db.execute(delete(MessageReseal).where(MessageReseal.message_id == message.id))
        attachments.revoke_grants(db, user, message.id, utcnow())
        _append_event(db, conversation_id, EventKind.DELETED, message.id, message.seq)
    members = list(_member_keys(db, conversation_id)[0])
    db.commit()
    notifier.publish(members)


# -- events -----------------------------------------------------------------------------


def _lock_conversation(db: Session, conversation_id: str) -> Conversation:
    """Take the conversation's row lock (held to commit) and read it fresh."""
    db.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(last_seq=Conversation.last_seq)
        .execution_options(synchronize_session=False)
    )
    conversation = db.get(Conversation, conversation_id, populate_existing=True)
    assert conversation is not None
    return conversation


def _is_postgresql(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def _insert_numbered(db: Session, values: dict[str, Any]) -> int:
    """Number the message under the conversation's row lock and insert it.

    The lock is held to commit, so within a conversation numbers commit in order and a
    page cursor never misses a message that commits late. On PostgreSQL numbering and
    insert are one statement, so the lock spans as few round trips as possible.
    """
    cid = values["conversation_id"]
    if not _is_postgresql(db):
        seq, ttl = db.execute(sql.NUMBER_MESSAGE, {"number_conversation_id": cid}).one()
        _check_timer(values["ttl"], ttl)
        db.execute(sql.INSERT_MESSAGE, {**values, "seq": seq})
        return int(seq)
    params = {f"m_{k}": v for k, v in values.items()}
    params |= {"number_conversation_id": cid, "expected_ttl": values["ttl"]}
    inserted = db.execute(sql.NUMBER_AND_INSERT_MESSAGE, params).scalar()
    if inserted is None:
        raise Conflict("the conversation's timer changed; fetch it again", code="timer_changed")
    return int(inserted)


def _append_event(
    db: Session,
    conversation_id: str,
    kind: EventKind,
    message_id: str | None = None,
    message_seq: int | None = None,
) -> int:
    """Number and store an event. The clock's row lock is held until commit, so event
    numbers become visible in order and a cursor never skips a late commit; on PostgreSQL
    the tick and the insert are one statement, the last before COMMIT."""
    values = _event_values(conversation_id, kind, message_id, message_seq)
    if not _is_postgresql(db):
        seq = db.execute(sql.TICK).scalar_one()
        db.execute(sql.INSERT_EVENT, {**values, "seq": seq})
        return int(seq)
    params = {f"e_{k}": v for k, v in values.items()}
    return int(db.execute(sql.TICK_AND_INSERT_EVENT, params).scalar_one())


def _event_values(
    conversation_id: str, kind: EventKind, message_id: str | None, message_seq: int | None
) -> dict[str, Any]:
    """An event's columns but its number."""
    return {
        "conversation_id": conversation_id,
        "kind": kind,
        "message_id": message_id,
        "message_seq": message_seq,
        "created_at": utcnow(),
    }


@dataclass(frozen=True)
class StreamStart:
    """Where a (re)connecting event stream starts, and whether it must resync."""

    position: int
    is_resync: bool


def stream_start(db: Session, cursor: int | None) -> StreamStart:
    """Resume after ``cursor`` unless events after it were trimmed; else start now."""
    clock = db.get(MessageClock, CLOCK_ID)
    assert clock is not None, "message_clock is seeded by migration 0003"
    if cursor is None:
        return StreamStart(clock.seq, False)
    if cursor < clock.horizon or cursor > clock.seq:
        return StreamStart(clock.seq, True)
    return StreamStart(cursor, False)


def events_after(db: Session, user_id: str, after: int, limit: int = 100) -> list[MessageEvent]:
    """Events of the account's conversations numbered after ``after``, oldest first."""
    params = {"user_id": user_id, "after": after, "limit": limit}
    return list(db.scalars(sql.EVENTS_AFTER, params))


def stream_read(
    db: Session, wanted: dict[str, int], limit: int = 100
) -> tuple[dict[str, str], dict[str, list[MessageEvent]]]:
    """For several accounts (account id -> cursor): each one's valid session identity
    (accounts.valid_session_ids; an account with none is left out) and its events_after.
    One statement on PostgreSQL, its rows split per account; on SQLite (the embedded
    default) the session check, then one statement per account."""
    found: dict[str, list[MessageEvent]] = {user_id: [] for user_id in wanted}
    sessions: dict[str, str] = {}
    if db.get_bind().dialect.name != "postgresql":
        sessions = accounts.valid_session_ids(db, wanted)
        for user_id, after in wanted.items():
            found[user_id] = events_after(db, user_id, after, limit)
        return sessions, found
    params = {"user_ids": list(wanted), "afters": list(wanted.values()), "limit": limit}
    for user_id, version, event in db.execute(sql.EVENTS_AFTER_MANY, params):
        sessions[user_id] = session_identity(user_id, version)
        if event is not None:
            found[user_id].append(event)
    return sessions, found


# -- purge ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeResult:
    """How many rows a purge deleted."""

    messages: int
    events: int


def purge(db: Session, retention: timedelta, now: datetime | None = None) -> PurgeResult:
    """Delete expired messages (and the events naming them) and events past retention."""
    now = now or utcnow()
    messages = events = 0
    while True:
        ids = list(
            db.scalars(select(Message.id).where(Message.expires_at <= now).limit(PURGE_BATCH))
        )
        if not ids:
            break
        events += _rowcount(
            db.execute(delete(MessageEvent).where(MessageEvent.message_id.in_(ids)))
        )
        messages += _rowcount(db.execute(delete(Message).where(Message.id.in_(ids))))
        db.commit()
    cutoff = db.scalar(
        select(func.max(MessageEvent.seq)).where(MessageEvent.created_at < now - retention)
    )
    if cutoff is not None:
        events += _rowcount(db.execute(delete(MessageEvent).where(MessageEvent.seq <= cutoff)))
        db.execute(
            update(MessageClock)
            .where(MessageClock.id == CLOCK_ID, MessageClock.horizon < cutoff)
            .values(horizon=cutoff)
        )
    db.commit()
    return PurgeResult(messages, events)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
