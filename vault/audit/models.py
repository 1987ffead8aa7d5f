"""The events table. Rows are only ever added; a later revision chains them by hash."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vault.db import Base, UTCDateTime, str_enum, utcnow


class EventKind(enum.StrEnum):
    """What happened."""

    UPLOAD = "upload"
    DOWNLOAD = "download"
    GRANT = "grant"
    REVOKE = "revoke"
    EXPIRY = "expiry"
    DELETE = "delete"
    MEMBER_ADD = "member_add"
    MEMBER_REQUEST = "member_request"
    MEMBER_DECLINE = "member_decline"
    MEMBER_REMOVE = "member_remove"
    DURESS_ALERT = "duress_alert"
    LINK_OPEN = "link_open"


# Seen by the case's survivor only: a counsel who asked could otherwise learn from their own
# history whether a username belongs to a counsel account (protocol §17).
SURVIVOR_ONLY_KINDS = frozenset({EventKind.MEMBER_REQUEST, EventKind.MEMBER_DECLINE})
# Seen by every member of the case: the survivor's silent alert to her counsel (protocol §18).
ALL_MEMBERS_KINDS = frozenset({EventKind.DURESS_ALERT})


class DownloadPurpose(enum.StrEnum):
    """Why a reader fetched a document's content, as its client declared (protocol §8.10)."""

    VIEW = "view"
    SAVE = "save"


class Event(Base):
    """One event. Ids are plain strings, not foreign keys: receipts outlive what they name.

    ``id`` is internal; clients see ``seq``, the event's number within its case (1, 2, 3, …),
    so a case's history says nothing about how much happened in other cases.
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[EventKind] = mapped_column(str_enum(EventKind))
    case_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    document_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    owner_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    subject_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ciphertext_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    range_first: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    range_last: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    purpose: Mapped[DownloadPurpose | None] = mapped_column(
        str_enum(DownloadPurpose), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("case_id", "seq", name="uq_events_case_id_seq"),
        Index("ix_events_document_id", "document_id"),
    )


class AuditEntry(Base):
    """One link of the tamper-evident audit chain: each entry hashes its predecessor."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    actor_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    subject_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    case_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    document_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[str] = mapped_column(String(512), default="{}")
    created_ms: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditCheckpoint(Base):
    """The chain's hash at ``seq``, signed by the log key."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    key_version: Mapped[int] = mapped_column(Integer)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
