"""The SQL of the hot paths (send, list, stream), built once with bound parameters.

Building a statement costs more Python than running it on a local database, so the
statements every send, page and stream read uses are constructed here at import and
executed with parameters; SQLAlchemy then reuses their compiled form.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Exists,
    Insert,
    Select,
    Table,
    and_,
    bindparam,
    column,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

from vault.accounts.models import User, UserKey
from vault.cases.models import CaseMember
from vault.messages.models import (
    Conversation,
    ConversationMember,
    Message,
    MessageClock,
    MessageEvent,
    MessageReseal,
)

CLOCK_ID = 1
MESSAGES = cast(Table, Message.__table__)
EVENTS = cast(Table, MessageEvent.__table__)

MESSAGE_FIELDS = (
    "id",
    "conversation_id",
    "seq",
    "sender_id",
    "sender_key_version",
    "sent_at",
    "ttl",
    "recipients",
    "attachments",
    "body",
    "signature",
    "digest",
    "received_at",
    "expires_at",
    "deleted_at",
)
INSERTED_FIELDS = tuple(f for f in MESSAGE_FIELDS if f != "seq")
EVENT_FIELDS = ("conversation_id", "kind", "message_id", "message_seq", "created_at")


def _in_case() -> ColumnElement[bool]:
    """The member is still in the conversation's case."""
    return and_(
        CaseMember.case_id == Conversation.case_id,
        CaseMember.user_id == ConversationMember.user_id,
    )


# A member's conversation: params conversation_id, user_id.
MEMBERSHIP = (
    select(Conversation)
    .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
    .join(CaseMember, _in_case())
    .where(
        Conversation.id == bindparam("conversation_id"),
        ConversationMember.user_id == bindparam("user_id"),
    )
)

IS_MEMBER: Exists = (
    select(ConversationMember.user_id)
    .join(Conversation, Conversation.id == ConversationMember.conversation_id)
    .join(CaseMember, _in_case())
    .where(
        ConversationMember.conversation_id == bindparam("conversation_id"),
        ConversationMember.user_id == bindparam("user_id"),
    )
    .exists()
)

# The conversation with each current member's current key: param conversation_id.
MEMBER_KEYS = (
    select(
        Conversation,
        ConversationMember.user_id,
        User.key_version,
        UserKey.status,
        UserKey.x25519,
        UserKey.ed25519,
        UserKey.signature,
    )
    .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
    .join(User, User.id == ConversationMember.user_id)
    .join(CaseMember, _in_case())
    .join(UserKey, and_(UserKey.user_id == User.id, UserKey.version == User.key_version))
    .where(Conversation.id == bindparam("conversation_id"))
)

# Current key versions and rotation freezes of some accounts: param ids (expanding).
KEY_VERSIONS = select(User.id, User.key_version, User.rotation_freeze_until).where(
    User.id.in_(bindparam("ids", expanding=True))
)

# The caller's reseals among some messages: params user_id, ids (expanding).
RESEALS = select(
    MessageReseal.message_id, MessageReseal.key_version, MessageReseal.sealed_key
).where(
    MessageReseal.user_id == bindparam("user_id"),
    MessageReseal.message_id.in_(bindparam("ids", expanding=True)),
)

MESSAGE_COLUMNS = tuple(MESSAGES.c[name] for name in MESSAGE_FIELDS)

# One message by id: param message_id.
LOAD_MESSAGE = select(*MESSAGE_COLUMNS).where(MESSAGES.c.id == bindparam("message_id"))

# Number the next message under the conversation's row lock: param number_conversation_id.
NUMBER_MESSAGE = (
    update(Conversation)
    .where(Conversation.id == bindparam("number_conversation_id"))
    .values(last_seq=Conversation.last_seq + 1)
    .returning(Conversation.last_seq.label("seq"), Conversation.ttl)
)

INSERT_MESSAGE = insert(MESSAGES)

_numbered = NUMBER_MESSAGE.cte("numbered")
# PostgreSQL: number and insert in one statement; no row when the timer changed
# (params: number_conversation_id, expected_ttl, and each inserted field prefixed "m_":
# an UPDATE would take parameters named like its table's columns as more SET values).
NUMBER_AND_INSERT_MESSAGE: Insert = (
    insert(MESSAGES)
    .from_select(
        [*INSERTED_FIELDS, "seq"],
        select(
            *(bindparam(f"m_{f}", type_=MESSAGES.c[f].type) for f in INSERTED_FIELDS),
            _numbered.c.seq,
        ).where(_numbered.c.ttl == bindparam("expected_ttl")),
    )
    .returning(MESSAGES.c.seq)
)

# Tick the event clock; its row lock is held until commit.
TICK = (
    update(MessageClock)
    .where(MessageClock.id == CLOCK_ID)
    .values(seq=MessageClock.seq + 1)
    .returning(MessageClock.seq)
)

INSERT_EVENT = insert(EVENTS)

_ticked = TICK.cte("ticked")
# PostgreSQL: tick and insert the event in one statement (params: EVENT_FIELDS prefixed
# "e_", for the reason above).
TICK_AND_INSERT_EVENT: Insert = (
    insert(EVENTS)
    .from_select(
        ["seq", *EVENT_FIELDS],
        select(_ticked.c.seq, *(bindparam(f"e_{f}", type_=EVENTS.c[f].type) for f in EVENT_FIELDS)),
    )
    .returning(EVENTS.c.seq)
)

_appended = TICK_AND_INSERT_EVENT.cte("appended")
# PostgreSQL, a send's last statement: tick, insert the event and read the recipients'
# current key versions and rotation freezes (params: EVENT_FIELDS prefixed "e_", ids
# expanding). One row per account found, or one row of NULLs beside the event's number.
APPEND_EVENT_AND_KEY_VERSIONS = select(
    _appended.c.seq.label("event_seq"), User.id, User.key_version, User.rotation_freeze_until
).select_from(_appended.outerjoin(User, User.id.in_(bindparam("ids", expanding=True))))


@dataclass(frozen=True)
class PageShape:
    """Which bounds a page query has."""

    has_before: bool
    has_after: bool


@cache
def page(shape: PageShape) -> Select[tuple[object, ...]]:
    """Live messages of a conversation the caller is in, newest first (params
    conversation_id, user_id, now, limit, and before / after when the shape has them)."""
    query = select(*MESSAGE_COLUMNS).where(
        MESSAGES.c.conversation_id == bindparam("conversation_id"),
        or_(MESSAGES.c.expires_at.is_(None), MESSAGES.c.expires_at > bindparam("now")),
        IS_MEMBER,
    )
    if shape.has_before:
        query = query.where(MESSAGES.c.seq < bindparam("before"))
    if shape.has_after:
        query = query.where(MESSAGES.c.seq > bindparam("after"))
    return query.order_by(MESSAGES.c.seq.desc()).limit(bindparam("limit"))


# A stream's next events: params user_id, after, limit.
EVENTS_AFTER = (
    select(MessageEvent)
    .join(
        ConversationMember,
        and_(
            ConversationMember.conversation_id == MessageEvent.conversation_id,
            ConversationMember.user_id == bindparam("user_id"),
        ),
    )
    .join(Conversation, Conversation.id == MessageEvent.conversation_id)
    .join(CaseMember, _in_case())
    .where(MessageEvent.seq > bindparam("after"))
    .order_by(MessageEvent.seq)
    .limit(bindparam("limit"))
)

# Every woken account's next events in one statement (PostgreSQL): params user_ids, afters
# (arrays, one cursor per account) and limit (per account). Each account's events are
# EVENTS_AFTER's, read by an index scan from its own cursor.
_WANTED = (
    func.unnest(
        bindparam("user_ids", type_=ARRAY(ConversationMember.user_id.type)),
        bindparam("afters", type_=ARRAY(BigInteger())),
    )
    .table_valued(column("user_id"), column("after"))
    .render_derived(name="wanted")
)
_FOUND = (
    select(MessageEvent)
    .join(
        ConversationMember,
        and_(
            ConversationMember.conversation_id == MessageEvent.conversation_id,
            ConversationMember.user_id == _WANTED.c.user_id,
        ),
    )
    .join(Conversation, Conversation.id == MessageEvent.conversation_id)
    .join(CaseMember, _in_case())
    .where(MessageEvent.seq > _WANTED.c.after)
    .order_by(MessageEvent.seq)
    .limit(bindparam("limit"))
    .lateral("found")
)
_FOUND_EVENT = aliased(MessageEvent, _FOUND)
# The session check folded in (one round trip per read): an account's rows come only while
# it is not disabled (load_session_user's rule), each with its session_version; an account
# with no new events still gives one row, its event columns NULL (the outer join).
EVENTS_AFTER_MANY = (
    select(_WANTED.c.user_id, User.session_version, _FOUND_EVENT)
    .select_from(_WANTED)
    .join(User, and_(User.id == _WANTED.c.user_id, User.is_disabled.is_(False)))
    .outerjoin(_FOUND, true())
    .order_by(_FOUND_EVENT.seq)
)
