"""Conversations, their members, message envelopes and the event log that drives delivery."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vault.db import Base, UTCDateTime, new_id, str_enum, utcnow

# BIGINT on PostgreSQL; SQLite's INTEGER is 64-bit already.
BigInt = BigInteger().with_variant(Integer(), "sqlite")


class EventKind(enum.StrEnum):
    """What an event tells a member's clients to fetch again."""

    MESSAGE = "message"
    DELETED = "deleted"
    CONVERSATION = "conversation"


class Conversation(Base):
    """A conversation inside a case: the survivor and one or more of the case's counsel."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Disappearing-message timer in seconds (0 = off); new messages expire this long
    # after the server received them.
    ttl: Mapped[int] = mapped_column(Integer, default=0)
    ttl_set_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    ttl_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Last message sequence number; bumped under the row lock, so within a conversation
    # numbers commit in order and cursors stay stable while messages arrive.
    last_seq: Mapped[int] = mapped_column(Integer, default=0)

    members: Mapped[list[ConversationMember]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        order_by="ConversationMember.joined_at",
    )


class ConversationMember(Base):
    """A member of a conversation and how far they have read."""

    __tablename__ = "conversation_members"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    last_read_seq: Mapped[int] = mapped_column(Integer, default=0)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="members")


class Message(Base):
    """One signed envelope as sent; a deleted message keeps only its id, sender and place."""

    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    sender_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    sender_key_version: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[int] = mapped_column(BigInt)
    ttl: Mapped[int] = mapped_column(Integer)
    recipients: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    attachments: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary(64), nullable=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)


class MessageEvent(Base):
    """A change members' clients learn about over server-sent events: ids, never content."""

    __tablename__ = "message_events"

    seq: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=False)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    kind: Mapped[EventKind] = mapped_column(str_enum(EventKind))
    message_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    message_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_message_events_conversation_seq", "conversation_id", "seq"),)


class MessageClock(Base):
    """The single row that numbers events. Its row lock, held to commit, orders the log."""

    __tablename__ = "message_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInt, default=0)
    # Events up to this number were trimmed by retention: older cursors must resync.
    horizon: Mapped[int] = mapped_column(BigInt, default=0)


class MessageGrant(Base):
    """A document read grant a message created for one of its recipients (an attachment).

    Deleting the message for everyone revokes the grants it made; a grant revoked or
    expired by other means takes its link with it.
    """

    __tablename__ = "message_grants"

    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    grant_id: Mapped[int] = mapped_column(
        ForeignKey("document_grants.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class MessageReseal(Base):
    """A message key re-sealed by one recipient to their newer key version (a key rotation).

    The envelope and its signature stay as sent; the reader opens the message key from
    here instead of its entry in ``recipients``. Deleting the message drops its reseals.
    """

    __tablename__ = "message_reseals"

    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    key_version: Mapped[int] = mapped_column(Integer)
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary(81))
