"""Accounts, their published keys and invites."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vault.db import Base, UTCDateTime, new_id, str_enum, utcnow


class Role(enum.StrEnum):
    """What an account is."""

    SURVIVOR = "survivor"
    COUNSEL = "counsel"
    ADMIN = "admin"


class KeyStatus(enum.StrEnum):
    """Lifecycle of a published key version."""

    CURRENT = "current"
    SUPERSEDED = "superseded"
    COMPROMISED = "compromised"


class User(Base):
    """An account. Holds no passphrase, no subkey and no private key in the clear."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    role: Mapped[Role] = mapped_column(str_enum(Role))
    username_lookup: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    lookup_key_version: Mapped[int] = mapped_column(Integer)
    username_sealed: Mapped[bytes] = mapped_column(LargeBinary(256))
    data_key_version: Mapped[int] = mapped_column(Integer, index=True)
    kdf_salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    kdf_opslimit: Mapped[int] = mapped_column(Integer)
    kdf_memlimit: Mapped[int] = mapped_column(Integer)
    auth_hash: Mapped[str] = mapped_column(String(255))
    recovery_auth_hash: Mapped[str] = mapped_column(String(255))
    wrapped_keys: Mapped[bytes] = mapped_column(LargeBinary(256))
    recovery_wrapped_keys: Mapped[bytes] = mapped_column(LargeBinary(256))
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # While a key rotation is being prepared (§14), nothing new is sealed to the account,
    # so the set its client re-seals cannot grow under it.
    rotation_freeze_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    keys: Mapped[list[UserKey]] = relationship(
        back_populates="user", order_by="UserKey.version", cascade="all, delete-orphan"
    )

    __table_args__ = (CheckConstraint("kdf_opslimit >= 3", name="kdf_opslimit_floor"),)

    # Flask-Login protocol: the session stores id and session version together, so
    # bumping the version ends every session of the account on the server side.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        """Disabled accounts cannot hold a session."""
        return not self.is_disabled

    def get_id(self) -> str:
        """Session identity: account id and session version."""
        return session_identity(self.id, self.session_version)


def session_identity(user_id: str, session_version: int) -> str:
    """The session identity ('id:version') of an account at a session version."""
    return f"{user_id}:{session_version}"


class UserKey(Base):
    """One published version of an account's public keys, self-signed."""

    __tablename__ = "user_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    x25519: Mapped[bytes] = mapped_column(LargeBinary(32))
    ed25519: Mapped[bytes] = mapped_column(LargeBinary(32))
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    status: Mapped[KeyStatus] = mapped_column(str_enum(KeyStatus), default=KeyStatus.CURRENT)
    log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    logged_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User] = relationship(back_populates="keys")

    __table_args__ = (UniqueConstraint("user_id", "version"),)


class Invite(Base):
    """A one-time, expiring invitation. Only a hash of the token is stored."""

    __tablename__ = "invites"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    role: Mapped[Role] = mapped_column(str_enum(Role))
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    redeemed_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )


class DuressLink(Base):
    """An account's duress passphrase: the hidden decoy account it opens (protocol §18).

    The decoy is an ordinary survivor account whose ``auth_hash`` is the hash of the duress
    authentication subkey and whose username lookup is random, so it is reached only through
    this link at sign-in, never by name.
    """

    __tablename__ = "duress_links"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    decoy_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    is_alerting: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ShareRequestState(enum.StrEnum):
    """Lifecycle of a recovery through shares (protocol §22)."""

    WAITING = "waiting"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class RecoverySetup(Base):
    """A survivor's split recovery key: which holders keep shares 2 and 3 (protocol §22).

    Only commitments, her signature and shares sealed to holders' keys are stored; a printed
    share leaves nothing here but its commitment.
    """

    __tablename__ = "recovery_setups"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    setup_id: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    key_version: Mapped[int] = mapped_column(Integer)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    shares: Mapped[list[RecoveryShare]] = relationship(
        order_by="RecoveryShare.slot", cascade="all, delete-orphan"
    )


class RecoveryShare(Base):
    """One held share: sealed to a holder account's key, or printed (holder_id null)."""

    __tablename__ = "recovery_shares"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    setup_user_id: Mapped[str] = mapped_column(
        ForeignKey("recovery_setups.user_id", ondelete="CASCADE")
    )
    slot: Mapped[int] = mapped_column(Integer)
    commitment: Mapped[bytes] = mapped_column(LargeBinary(32))
    holder_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    holder_key_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sealed_share: Mapped[bytes | None] = mapped_column(LargeBinary(128), nullable=True)

    __table_args__ = (UniqueConstraint("setup_user_id", "slot"),)


class ShareRecoveryRequest(Base):
    """A survivor's request to rebuild her recovery key from two holders' shares."""

    __tablename__ = "share_recovery_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    setup_id: Mapped[bytes] = mapped_column(LargeBinary(16))
    auth_hash: Mapped[str] = mapped_column(String(255))
    request_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    state: Mapped[ShareRequestState] = mapped_column(str_enum(ShareRequestState))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ready_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    releases: Mapped[list[ReleasedShare]] = relationship(
        order_by="ReleasedShare.slot", cascade="all, delete-orphan"
    )


class ReleasedShare(Base):
    """A share a holder released to a request: sealed to the request's key only."""

    __tablename__ = "released_shares"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(
        ForeignKey("share_recovery_requests.id", ondelete="CASCADE")
    )
    slot: Mapped[int] = mapped_column(Integer)
    sealed_share: Mapped[bytes] = mapped_column(LargeBinary(128))
    released_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    released_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("request_id", "slot"),)


class TotpFactor(Base):
    """An account's TOTP secret, sealed under the server's factor key (protocol §21.2)."""

    __tablename__ = "totp_factors"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary(128))
    key_version: Mapped[int] = mapped_column(Integer, index=True)
    # The last time step a code was accepted for: no code of it or earlier works again.
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RecoveryCode(Base):
    """A one-time code that stands in for the second factor; only its hash is kept."""

    __tablename__ = "factor_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class FactorPolicy(Base):
    """The service's second-factor policy: one row, set by admins."""

    __tablename__ = "factor_policy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    is_required_for_staff: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Passkey(Base):
    """A WebAuthn credential of an account (protocol §21.8), with its optional PRF way in."""

    __tablename__ = "passkeys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(1024))
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(64))
    # The key bundle wrapped under the key its PRF output derives (§21.9), and the key
    # version it holds; null when the authenticator has no PRF or after a key rotation.
    prf_wrapped_keys: Mapped[bytes | None] = mapped_column(LargeBinary(256), nullable=True)
    prf_key_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
