"""Intake team, reports, their sealed keys and entries, and one-use challenges (§20).

Nothing here names the reporter: a report holds two public keys derived from the receipt,
the lookup id derived from them, and ciphertext.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vault.db import Base, UTCDateTime, str_enum, utcnow
from vault.protocol import intake as pin


class ReportStatus(enum.StrEnum):
    """Where a report stands for the team."""

    NEW = "new"
    ASSIGNED = "assigned"
    HANDLED = "handled"


class IntakeTeamMember(Base):
    """A counsel account an admin put on the intake team."""

    __tablename__ = "intake_team_members"

    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    added_by: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IntakeReport(Base):
    """One anonymous report: receipt-derived public keys, status, and the reporter's key copy."""

    __tablename__ = "intake_reports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    lookup: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    box_public: Mapped[bytes] = mapped_column(LargeBinary(32))
    sign_public: Mapped[bytes] = mapped_column(LargeBinary(32))
    reporter_key: Mapped[bytes] = mapped_column(LargeBinary(pin.SEALED_KEY_BYTES))
    status: Mapped[ReportStatus] = mapped_column(str_enum(ReportStatus))
    assignee_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class IntakeReportKey(Base):
    """The report key sealed to one team member's box key of one version."""

    __tablename__ = "intake_report_keys"

    report_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("intake_reports.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key_version: Mapped[int] = mapped_column(Integer)
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary(pin.SEALED_KEY_BYTES))


class IntakeEntry(Base):
    """One encrypted entry of a report's thread: the report itself, a message or a reply."""

    __tablename__ = "intake_entries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    report_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("intake_reports.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    # None for the reporter; a team member's account otherwise.
    author_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    key_version: Mapped[int] = mapped_column(Integer)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary(pin.MAX_ENTRY_PLAINTEXT + 1024))
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("report_id", "seq"),)


class IntakeAttachment(Base):
    """An encrypted attachment of a report: §8.2 content in the store under a random name.

    Its file key, content header, name and type travel in an entry, under the report key.
    """

    __tablename__ = "intake_attachments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    report_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("intake_reports.id", ondelete="CASCADE"), index=True
    )
    object_name: Mapped[str] = mapped_column(String(64), unique=True)
    upload_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    ciphertext_size: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int] = mapped_column(Integer)
    part_size: Mapped[int] = mapped_column(BigInteger)
    part_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IntakeAttachmentPart(Base):
    """A part of an attachment's upload that the object store acknowledged."""

    __tablename__ = "intake_attachment_parts"

    attachment_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("intake_attachments.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(128))


class IntakeChallenge(Base):
    """A random challenge the server issued: used once, for a proof of work or a session."""

    __tablename__ = "intake_challenges"

    challenge: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
