"""The key transparency log: entries, perfect subtree nodes, signed heads, log keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from vault.db import Base, UTCDateTime, utcnow


class LogEntry(Base):
    """One appended entry; ``index`` is its leaf position."""

    __tablename__ = "kt_entries"

    index: Mapped[int] = mapped_column("idx", BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(32), index=True)
    key_version: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LogNode(Base):
    """A perfect subtree hash: level L, index i covers leaves [i*2^L, (i+1)*2^L)."""

    __tablename__ = "kt_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column("idx", BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class TreeHeadRow(Base):
    """A signed tree head, one per size."""

    __tablename__ = "kt_heads"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    key_version: Mapped[int] = mapped_column(Integer)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))


class LogKey(Base):
    """A version of the log signing key's public half, announced by its predecessor."""

    __tablename__ = "kt_log_keys"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    announcement: Mapped[bytes | None] = mapped_column(LargeBinary(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Cosignature(Base):
    """A witness's cosignature line on the checkpoint of one tree size (§15)."""

    __tablename__ = "kt_cosignatures"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(String(255), primary_key=True)
    line: Mapped[str] = mapped_column(String(1024))
    timestamp: Mapped[int] = mapped_column(BigInteger)
