"""Outcome reports, per-period privacy budgets and released figures (protocol §28).

An outcome row holds the randomized answers (local differential privacy) and the true
answers sealed to the case's members; the server never holds a true answer in clear.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vault.db import Base, UTCDateTime, new_id, utcnow

MAX_RECORD_BYTES = 64 * 1024


class Outcome(Base):
    """One case's randomized outcome answers for one reporting period."""

    __tablename__ = "figure_outcomes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    epsilon: Mapped[float] = mapped_column(Float)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    record: Mapped[bytes] = mapped_column(LargeBinary(MAX_RECORD_BYTES))
    submitted_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("case_id", "period"),)


class Budget(Base):
    """A reporting period's privacy budget: its total and what releases have spent."""

    __tablename__ = "figure_budgets"

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    epsilon_total: Mapped[float] = mapped_column(Float)
    epsilon_spent: Mapped[float] = mapped_column(Float, default=0.0)


class Release(Base):
    """One release of every figure of a period, as published."""

    __tablename__ = "figure_releases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    period: Mapped[str] = mapped_column(String(7), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    epsilon: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    figures: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
