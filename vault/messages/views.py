"""Messaging routes: conversations, envelopes, timers, read markers and the event stream."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Literal

from flask import Blueprint, Flask, Response, current_app, jsonify, request, session
from flask_limiter.util import get_remote_address
from flask_login import current_user
from pydantic import Field

from vault import clock, db
from vault.accounts import services as accounts
from vault.accounts.models import Role
from vault.accounts.views import KeyOut, key_json
from vault.api import (
    B64,
    EVENT_STREAM,
    MAX_INT,
    NO_CONTENT,
    Body,
    Header,
    Out,
    Query,
    Reply,
    Timestamp,
    b64_exact,
    b64_max,
    endpoint,
    me,
    ok,
    optional_query_int,
    parse_body,
)
from vault.cases import services as cases
from vault.errors import NotFound, Unavailable
from vault.extensions import limiter, setting_limit
from vault.keyring import keyring
from vault.messages import services
from vault.messages.attachments import AttachmentKey
from vault.messages.models import ConversationMember
from vault.messages.services import ConversationView, Member, StoredMessage
from vault.messages.stream import EventStream, StreamSlots
from vault.protocol import documents as pdoc
from vault.protocol import messages as pmsg
from vault.protocol.encoding import b64encode

bp = Blueprint("messages", __name__, url_prefix="/api/v1")
bench_bp = Blueprint("messages_bench", __name__, url_prefix="/api/v1/bench")

MEMBERS = {Role.SURVIVOR, Role.COUNSEL}
ID_CHARS = pmsg.MAX_ID_CHARS
# A hard ceiling for parsing; the configured HAVEN_MESSAGE_MAX_BYTES is checked after.
BODY_CEILING = 1024 * 1024
SEALED_FILE_KEY = pdoc.SEALED_KEY_BYTES


class NewConversationBody(Body):
    """The other members of a new conversation (the caller is always one)."""

    members: list[str] = Field(max_length=pmsg.MAX_RECIPIENTS - 1)


class RecipientBody(Body):
    """One recipient: who, at which key version, and the message key sealed to them."""

    user_id: str = Field(min_length=1, max_length=ID_CHARS)
    key_version: int
    sealed_key: b64_exact(pmsg.SEALED_KEY_BYTES)  # type: ignore[valid-type]


class AttachmentKeyBody(Body):
    """An attached document's file key sealed to a recipient who cannot read it yet."""

    document_id: str = Field(min_length=1, max_length=ID_CHARS)
    user_id: str = Field(min_length=1, max_length=ID_CHARS)
    sealed_key: b64_exact(SEALED_FILE_KEY)  # type: ignore[valid-type]


class EnvelopeBody(Body):
    """A signed message envelope (docs/protocol.md §9)."""

    id: b64_exact(pmsg.MESSAGE_ID_BYTES)  # type: ignore[valid-type]
    conversation_id: str = Field(min_length=1, max_length=ID_CHARS)
    sender_id: str = Field(min_length=1, max_length=ID_CHARS)
    sender_key_version: int
    sent_at: int
    ttl: int = Field(json_schema_extra={"enum": list(pmsg.TIMERS)})
    recipients: list[RecipientBody] = Field(min_length=1, max_length=pmsg.MAX_RECIPIENTS)
    attachments: list[str] = Field(default_factory=list, max_length=pmsg.MAX_ATTACHMENTS)
    body: b64_max(BODY_CEILING)  # type: ignore[valid-type]
    signature: b64_exact(pmsg.SIGNATURE_BYTES)  # type: ignore[valid-type]
    attachment_keys: list[AttachmentKeyBody] = Field(
        default_factory=list, max_length=pmsg.MAX_ATTACHMENTS * pmsg.MAX_RECIPIENTS
    )

    def envelope(self) -> pmsg.Envelope:
        """The protocol object, in the order the client signed it."""
        header = pmsg.Header(
            conversation_id=self.conversation_id,
            message_id=self.id,
            sender_id=self.sender_id,
            sender_key_version=self.sender_key_version,
            sent_at=self.sent_at,
            ttl=self.ttl,
            recipients=tuple(pmsg.Recipient(r.user_id, r.key_version) for r in self.recipients),
            attachments=tuple(self.attachments),
        )
        keys = tuple(r.sealed_key for r in self.recipients)
        return pmsg.Envelope(header, self.body, keys, self.signature)

    def attachment_grants(self) -> list[AttachmentKey]:
        """The sealed file keys for recipients who cannot read an attachment yet."""
        return [AttachmentKey(k.document_id, k.user_id, k.sealed_key) for k in self.attachment_keys]


class TimerBody(Body):
    """A disappearing-message timer in seconds: 0, 3600, 86400, 604800 or 2592000."""

    # The service checks the value against the same tuple (answering invalid_timer).
    seconds: int = Field(json_schema_extra={"enum": list(pmsg.TIMERS)})


class ReadBody(Body):
    """Everything up to and including this message number has been read."""

    seq: int = Field(ge=0)


class ConversationOut(Out):
    """A conversation as the caller sees it."""

    id: str
    case_id: str
    members: list[str]
    ttl: int = Field(json_schema_extra={"enum": list(pmsg.TIMERS)})
    ttl_set_by: str | None
    last_seq: int
    last_read_seq: int
    unread: int
    created_at: Timestamp
    last_activity_at: Timestamp


class ConversationMemberOut(Out):
    """A conversation member with the current keys senders must seal to."""

    user_id: str
    role: Literal["survivor", "counsel", "admin"]
    username: str
    key_version: int
    public_keys: KeyOut


class ConversationDetailOut(ConversationOut):
    """A conversation with its members' current public keys."""

    members: list[ConversationMemberOut]  # type: ignore[assignment]


class ConversationReply(Out):
    """One conversation."""

    conversation: ConversationOut


class ConversationDetailReply(Out):
    """One conversation with its members' keys."""

    conversation: ConversationDetailOut


class ConversationsReply(Out):
    """My conversations, latest activity first."""

    conversations: list[ConversationOut]


class RecipientOut(Out):
    """A recipient and the message key sealed to them."""

    user_id: str
    key_version: int
    sealed_key: B64


class ResealOut(Out):
    """The message key re-sealed to the caller's newer key version (§14)."""

    key_version: int
    sealed_key: B64


class MessageOut(Out):
    """A stored envelope with the server's fields; a tombstone has no content fields."""

    id: str
    conversation_id: str
    seq: int
    sender_id: str
    sender_key_version: int
    sent_at: int
    ttl: int
    received_at: Timestamp
    expires_at: Timestamp | None
    deleted: bool
    recipients: list[RecipientOut] | None = None
    attachments: list[str] | None = None
    body: B64 | None = None
    signature: B64 | None = None
    reseal: ResealOut | None = None


class MessageReply(Out):
    """One message."""

    message: MessageOut


class MessagesReply(Out):
    """A page of messages, newest first, and the cursor of the next older page."""

    messages: list[MessageOut]
    next_before: int | None


class ReadReply(Out):
    """My read marker now."""

    last_read_seq: int


class OkReply(Out):
    """The bench baseline's answer."""

    ok: bool


class MessagesQuery(Query):
    """Which page of messages."""

    before: int | None = Field(None, ge=1, le=MAX_INT, description="messages with seq below")
    after: int | None = Field(None, ge=0, le=MAX_INT, description="messages with seq above")
    limit: int = Field(
        50,
        ge=1,
        le=MAX_INT,
        description=f"how many at most; above {services.MAX_PAGE}, {services.MAX_PAGE}",
    )


class EventsQuery(Query):
    """Where to resume the stream (the Last-Event-ID header wins)."""

    last_event_id: str | None = Field(
        None, description="the last event seen; only its first 512 characters are read"
    )


LAST_EVENT_ID = Header(
    "Last-Event-ID", "the id of the last event seen, to resume after it", {"type": "string"}
)


def _fanout() -> Any:
    return current_app.extensions["haven.fanout"]


def _send_rules() -> services.SendRules:
    cfg = current_app.config
    return services.SendRules(
        max_body=cfg["HAVEN_MESSAGE_MAX_BYTES"],
        clock_skew=timedelta(seconds=cfg["HAVEN_MESSAGE_CLOCK_SKEW_SECONDS"]),
        max_age=timedelta(seconds=cfg["HAVEN_MESSAGE_MAX_AGE_SECONDS"]),
    )


def _per_account(prefix: str) -> Any:
    def key() -> str:
        if current_user.is_authenticated:
            return f"{prefix}:{current_user.id}"
        return f"{prefix}-anon:{get_remote_address()}"

    return key


def member_json(member: Member) -> dict[str, Any]:
    """A conversation member with the current keys senders must seal to."""
    return {
        "user_id": member.user.id,
        "role": member.role.value,
        "username": accounts.display_name(keyring(), member.user),
        "key_version": member.user.key_version,
        "public_keys": key_json(member.key),
    }


def conversation_json(view: ConversationView) -> dict[str, Any]:
    """A conversation as the caller sees it."""
    conversation = view.conversation
    return {
        "id": conversation.id,
        "case_id": conversation.case_id,
        "members": view.member_ids,
        "ttl": conversation.ttl,
        "ttl_set_by": conversation.ttl_set_by,
        "last_seq": conversation.last_seq,
        "last_read_seq": view.last_read_seq,
        "unread": view.unread,
        "created_at": conversation.created_at.isoformat(),
        "last_activity_at": view.last_activity_at.isoformat(),
    }


def message_json(message: StoredMessage, reseal: tuple[int, bytes] | None = None) -> dict[str, Any]:
    """A stored envelope (or a tombstone) with the server's own fields, and the caller's
    re-sealed message key if they rotated their keys since (§14)."""
    data: dict[str, Any] = {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "sender_id": message.sender_id,
        "sender_key_version": message.sender_key_version,
        "sent_at": message.sent_at,
        "ttl": message.ttl,
        "received_at": message.received_at.isoformat(),
        "expires_at": message.expires_at.isoformat() if message.expires_at else None,
        "deleted": message.deleted_at is not None,
    }
    if message.deleted_at is None:
        assert message.body is not None and message.signature is not None
        data |= {
            "recipients": message.recipients,
            "attachments": message.attachments or [],
            "body": b64encode(message.body),
            "signature": b64encode(message.signature),
            "reseal": None
            if reseal is None
            else {"key_version": reseal[0], "sealed_key": b64encode(reseal[1])},
        }
    return data


def _query_int(name: str, *, minimum: int = 0) -> int | None:
    return optional_query_int(name, minimum=minimum, code="invalid_field")


@bp.post("/cases/<case_id>/conversations")
@limiter.limit(setting_limit("HAVEN_LIMIT_CONVERSATION_CREATE"), key_func=_per_account("conv"))
@endpoint(
    "Open a conversation in a case with the survivor and chosen counsel",
    roles=MEMBERS,
    body=NewConversationBody,
    replies=ok(ConversationReply, 201),
)
def create_conversation(case_id: str) -> tuple[Response, int]:
    """Create the conversation; the caller is a member."""
    user = me()
    cases.get_case(db.session(), user, case_id)
    body = parse_body(NewConversationBody)
    conversation = services.create_conversation(
        db.session(),
        _fanout(),
        user,
        case_id,
        body.members,
        ttl=current_app.config["HAVEN_MESSAGE_DEFAULT_TIMER"],
    )
    view = services.conversation_view(db.session(), user, conversation.id)
    return jsonify({"conversation": conversation_json(view)}), 201


@bp.get("/conversations")
@endpoint(
    "My conversations with unread counts, latest activity first",
    roles=MEMBERS,
    replies=ok(ConversationsReply),
)
def list_conversations() -> Response:
    """List my conversations."""
    views = services.list_conversations(db.session(), me())
    return jsonify({"conversations": [conversation_json(v) for v in views]})


@bp.get("/conversations/<conversation_id>")
@endpoint(
    "One conversation with its members' current public keys",
    roles=MEMBERS,
    replies=ok(ConversationDetailReply),
)
def get_conversation(conversation_id: str) -> Response:
    """Show a conversation and the keys a sender must seal to."""
    user = me()
    view = services.conversation_view(db.session(), user, conversation_id)
    members = services.current_members(db.session(), view.conversation)
    data = conversation_json(view) | {"members": [member_json(m) for m in members]}
    return jsonify({"conversation": data})


@bp.post("/conversations/<conversation_id>/messages")
@limiter.limit(setting_limit("HAVEN_LIMIT_MESSAGE_SEND"), key_func=_per_account("send"))
@endpoint(
    "Send a signed message envelope",
    roles=MEMBERS,
    body=EnvelopeBody,
    replies=(ok(MessageReply, 201, "stored"), ok(MessageReply, 200, "already stored (a retry)")),
)
def send_message(conversation_id: str) -> tuple[Response, int]:
    """Store an envelope after checking members, keys, header binding and signature."""
    place = services.membership(db.session(), me(), conversation_id, with_keys=True)
    body = parse_body(EnvelopeBody)
    message, is_new = services.send_message(
        db.session(), _fanout(), place, body.envelope(), _send_rules(), body.attachment_grants()
    )
    if is_new:  # sealed at current key versions just now: it has no reseal
        return jsonify({"message": message_json(message)}), 201
    reseals = services.reseals_for(db.session(), me(), [message.id])
    return jsonify({"message": message_json(message, reseals.get(message.id))}), 200


@bp.get("/conversations/<conversation_id>/messages")
@endpoint(
    "Messages newest first; ?before=seq and ?after=seq bound the page, ?limit≤200",
    roles=MEMBERS,
    replies=ok(MessagesReply),
    query=MessagesQuery,
)
def list_messages(conversation_id: str) -> Response:
    """A page of envelopes and the cursor of the next (older) page."""
    messages, next_before = services.list_messages(
        db.session(),
        me(),
        conversation_id,
        before=_query_int("before", minimum=1),
        after=_query_int("after"),
        limit=_query_int("limit", minimum=1) or 50,
    )
    reseals = services.reseals_for(db.session(), me(), [m.id for m in messages])
    return jsonify(
        {
            "messages": [message_json(m, reseals.get(m.id)) for m in messages],
            "next_before": next_before,
        }
    )


@bp.get("/conversations/<conversation_id>/messages/<message_id>")
@endpoint("One message of a conversation", roles=MEMBERS, replies=ok(MessageReply))
def get_message(conversation_id: str, message_id: str) -> Response:
    """Show one envelope or tombstone."""
    message = services.get_message(db.session(), me(), conversation_id, message_id)
    reseals = services.reseals_for(db.session(), me(), [message.id])
    return jsonify({"message": message_json(message, reseals.get(message.id))})


@bp.delete("/conversations/<conversation_id>/messages/<message_id>")
@endpoint(
    "Delete my message for everyone (its ciphertext is erased)", roles=MEMBERS, replies=NO_CONTENT
)
def delete_message(conversation_id: str, message_id: str) -> tuple[str, int]:
    """Erase the ciphertext, keep a tombstone."""
    services.delete_message(db.session(), _fanout(), me(), conversation_id, message_id)
    return "", 204


@bp.put("/conversations/<conversation_id>/timer")
@endpoint(
    "Set the disappearing-message timer (any member)",
    roles=MEMBERS,
    body=TimerBody,
    replies=ok(ConversationReply),
)
def set_timer(conversation_id: str) -> Response:
    """Set the timer for messages sent from now on."""
    place = services.membership(db.session(), me(), conversation_id)
    body = parse_body(TimerBody)
    services.set_timer(db.session(), _fanout(), place, body.seconds)
    view = services.conversation_view(db.session(), place.user, conversation_id)
    return jsonify({"conversation": conversation_json(view)})


@bp.post("/conversations/<conversation_id>/read")
@endpoint("Move my read marker forward", roles=MEMBERS, body=ReadBody, replies=ok(ReadReply))
def mark_read(conversation_id: str) -> Response:
    """Record that I have read up to a message number."""
    place = services.membership(db.session(), me(), conversation_id)
    body = parse_body(ReadBody)
    seq = services.mark_read(db.session(), place, body.seq)
    return jsonify({"last_read_seq": seq})


@bp.get("/events")
@endpoint(
    "Server-sent events naming new messages, deletions and conversation changes",
    roles=MEMBERS,
    replies=Reply(200, None, EVENT_STREAM, "server-sent events"),
    query=EventsQuery,
    headers=[LAST_EVENT_ID],
)
def events() -> Response:
    """Stream event ids; resume with the Last-Event-ID header (or ?last_event_id=)."""
    user = me()
    cfg = current_app.config
    slots: StreamSlots = current_app.extensions["haven.stream_slots"]
    if cfg["HAVEN_TIER"] == "app":
        raise Unavailable("event streams are served by the event tier", code="busy")
    if not slots.acquire():
        raise Unavailable("too many open event streams; retry shortly", code="busy")
    issued = session.get("iat")
    now_wall, now = clock.time(), time.monotonic()
    lifetime = min(
        cfg["HAVEN_SSE_MAX_SECONDS"],
        cfg["PERMANENT_SESSION_LIFETIME"],
        (issued + cfg["HAVEN_SESSION_MAX_SECONDS"] - now_wall) if isinstance(issued, int) else 0,
    )
    cursor = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    stream = EventStream(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        user.id,
        user.get_id(),
        cursor[:512] if cursor else None,
        now + max(0.0, float(lifetime)),
        slots.release,
        # The connection, so a stream sees its client leave: gunicorn's, or the dev server's.
        request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket"),
    )
    response = Response(stream, mimetype="text/event-stream")
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bench_bp.get("/conversations/<conversation_id>")
@endpoint(
    "Bench baseline: the session check and one indexed read", roles=MEMBERS, replies=ok(OkReply)
)
def bench_baseline(conversation_id: str) -> Response:
    """Only served when HAVEN_BENCH is true."""
    if db.session().get(ConversationMember, (conversation_id, me().id)) is None:
        raise NotFound("no such conversation")
    return jsonify({"ok": True})


def register_bench(app: Flask) -> None:
    """Serve the bench baseline route, only when HAVEN_BENCH is set."""
    if app.config["HAVEN_BENCH"]:
        app.register_blueprint(bench_bp)
