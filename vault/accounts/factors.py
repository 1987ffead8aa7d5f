"""Second factors (protocol §21): TOTP with one-time recovery codes, passkeys, the policy.

The TOTP secret is sealed at rest under the server's ``factor`` key, bound to its account;
recovery codes are kept as BLAKE2b hashes. A duress decoy has no factors of its own: its
sign-in asks for, and is completed by, its owner's factor, so the two sign-ins look alike
(protocol §18).
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nacl.encoding
import nacl.hash
import nacl.utils
import pyotp
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from vault import clock
from vault.accounts import passkeys
from vault.accounts import services as accounts
from vault.accounts.models import (
    DuressLink,
    FactorPolicy,
    Passkey,
    RecoveryCode,
    Role,
    TotpFactor,
    User,
)
from vault.audit import chain
from vault.db import utcnow
from vault.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from vault.keyring import Keyring
from vault.protocol import serverdata

TOTP_SECRET_BYTES = 20
TOTP_PERIOD = 30
TOTP_DIGITS = 6
# A code of the step before or after now is accepted too: phones' clocks drift.
TOTP_WINDOW = 1
RECOVERY_CODES = 10
RECOVERY_CODE_BYTES = 10
RECOVERY_PERSON = b"haven-rcode-v1"
STAFF = (Role.COUNSEL, Role.ADMIN)


@dataclass(frozen=True)
class Enrolment:
    """A TOTP secret to show once, as base32 and as an otpauth URI."""

    secret: str
    uri: str


@dataclass(frozen=True)
class FactorState:
    """What an account has: TOTP since when, how many recovery codes are left, the policy."""

    totp_since: datetime | None
    recovery_codes_left: int
    is_required: bool


def _seal_kind(user_id: str) -> str:
    return f"totp/{user_id}"


def _seal(ring: Keyring, user_id: str, secret: str) -> tuple[bytes, int]:
    version = ring.current_version("factor")
    key = ring.current("factor")
    return serverdata.seal_identifier(key, version, _seal_kind(user_id), secret), version


def _open(ring: Keyring, factor: TotpFactor) -> str:
    key = ring.get("factor", serverdata.sealed_version(factor.secret_sealed))
    return serverdata.open_identifier(key, _seal_kind(factor.user_id), factor.secret_sealed)


def code_hash(code: str) -> bytes:
    """BLAKE2b-256 of a recovery code's normalised form (upper case, no separators)."""
    normal = "".join(ch for ch in code.upper() if ch.isalnum())
    return nacl.hash.blake2b(
        normal.encode("ascii", "replace"),
        digest_size=32,
        person=RECOVERY_PERSON,
        encoder=nacl.encoding.RawEncoder,
    )


def new_recovery_code() -> str:
    """80 random bits as 16 base32 characters in four groups: ABCD-EFGH-IJKL-MNOP."""
    text = base64.b32encode(nacl.utils.random(RECOVERY_CODE_BYTES)).decode()
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


def factor_owner(db: Session, user_id: str) -> str:
    """Whose factors guard this account: its own, or for a duress decoy its owner's."""
    owner = db.scalar(select(DuressLink.user_id).where(DuressLink.decoy_id == user_id))
    return owner or user_id


def _confirmed(db: Session, user_id: str) -> TotpFactor | None:
    factor = db.get(TotpFactor, user_id)
    return factor if factor is not None and factor.confirmed_at is not None else None


def methods(db: Session, user_id: str) -> list[str]:
    """The second factors the account can sign in with: TOTP with its recovery codes, passkey."""
    found = ["totp", "recovery_code"] if _confirmed(db, user_id) is not None else []
    return found + (["passkey"] if passkeys.count(db, user_id) else [])


def has_factor(db: Session, user_id: str) -> bool:
    """Whether the account has a confirmed second factor."""
    return bool(methods(db, user_id))


def is_required_for_staff(db: Session, default: bool) -> bool:
    """The policy: whether counsel and admins must have a second factor."""
    policy = db.get(FactorPolicy, 1)
    return default if policy is None else policy.is_required_for_staff


def is_required(db: Session, user: User, default: bool) -> bool:
    """Whether this account's role must have a second factor under the policy."""
    return user.role in STAFF and is_required_for_staff(db, default)


def must_enrol(db: Session, user: User, default: bool) -> bool:
    """A counsel or admin the policy covers who has no factor yet: sent to enrolment."""
    return is_required(db, user, default) and not has_factor(db, user.id)


def state(db: Session, user: User, default: bool) -> FactorState:
    """The factors guarding an account (a decoy shows its owner's)."""
    owner_id = factor_owner(db, user.id)
    factor = _confirmed(db, owner_id)
    left = db.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == owner_id, RecoveryCode.used_at.is_(None))
    )
    return FactorState(
        factor.confirmed_at if factor else None, int(left or 0), is_required(db, user, default)
    )


def _own_account(db: Session, user_id: str) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("no such account")
    if accounts.is_decoy(db, user_id):
        raise Forbidden("this account cannot change its second factors")
    return user


def begin_totp(db: Session, ring: Keyring, user_id: str, issuer: str) -> Enrolment:
    """Draw a new secret, kept sealed and unconfirmed until a code from it is sent back."""
    user = _own_account(db, user_id)
    if _confirmed(db, user_id) is not None:
        raise Conflict("TOTP is already set up; remove it first", code="factor_exists")
    secret = base64.b32encode(nacl.utils.random(TOTP_SECRET_BYTES)).decode()
    sealed, version = _seal(ring, user_id, secret)
    factor = db.get(TotpFactor, user_id)
    if factor is None:
        factor = TotpFactor(user_id=user_id)
        db.add(factor)
    factor.secret_sealed = sealed
    factor.key_version = version
    factor.last_step = 0
    factor.confirmed_at = None
    db.commit()
    uri = pyotp.TOTP(secret).provisioning_uri(
        name=accounts.display_name(ring, user), issuer_name=issuer
    )
    return Enrolment(secret, uri)


def _matching_step(secret: str, code: str, now: float) -> int | None:
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD)
    current = int(now // TOTP_PERIOD)
    found = None
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def _check_code(ring: Keyring, factor: TotpFactor, code: str) -> int:
    """The time step a code belongs to, refusing wrong, expired and already used codes."""
    step = _matching_step(_open(ring, factor), code, clock.time())
    if step is None:
        raise Unauthorized("the code is wrong or has expired", code="bad_factor")
    if step <= factor.last_step:
        raise Unauthorized("this code was used already; wait for the next one", code="code_used")
    return step


def confirm_totp(db: Session, ring: Keyring, user_id: str, code: str) -> list[str]:
    """Turn TOTP on once a code from the new secret checks; return fresh recovery codes."""
    _own_account(db, user_id)
    factor = db.get(TotpFactor, user_id)
    if factor is None or factor.confirmed_at is not None:
        raise NotFound("no TOTP set-up is waiting for a code", code="no_enrolment")
    factor.last_step = _check_code(ring, factor, code)
    factor.confirmed_at = utcnow()
    codes = _replace_recovery_codes(db, user_id)
    chain.append(
        db, "factor_enrolled", actor_id=user_id, subject_id=user_id, detail={"kind": "totp"}
    )
    db.commit()
    return codes


def _replace_recovery_codes(db: Session, user_id: str) -> list[str]:
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    db.add_all(RecoveryCode(user_id=user_id, code_hash=code_hash(c)) for c in codes)
    return codes


def remove_totp(db: Session, user_id: str, default: bool) -> None:
    """Turn TOTP off with its recovery codes, unless the policy needs it (the last factor)."""
    user = _own_account(db, user_id)
    factor = _confirmed(db, user_id)
    if factor is None:
        raise NotFound("TOTP is not set up", code="no_factor")
    if is_required(db, user, default) and not passkeys.count(db, user_id):
        raise Conflict(
            "your role must keep a second factor; add another before removing this one",
            code="factor_required",
        )
    db.delete(factor)
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    chain.append(
        db, "factor_removed", actor_id=user_id, subject_id=user_id, detail={"kind": "totp"}
    )
    db.commit()


def verify_sign_in(
    db: Session, ring: Keyring, user_id: str, code: str | None, recovery_code: str | None
) -> str:
    """Check the second factor of a pending sign-in; return the method that was used.

    ``user_id`` is the account signing in; for a decoy, its owner's factor is checked.
    """
    owner_id = factor_owner(db, user_id)
    factor = _confirmed(db, owner_id)
    if factor is None:
        raise Unauthorized("this account has no second factor", code="no_factor")
    if code is not None:
        try:
            factor.last_step = _check_code(ring, factor, code)
        except Unauthorized:
            _failed(db, user_id, "totp")
            raise
        method = "totp"
    else:
        used = db.scalars(
            select(RecoveryCode).where(
                RecoveryCode.user_id == owner_id,
                RecoveryCode.code_hash == code_hash(recovery_code or ""),
                RecoveryCode.used_at.is_(None),
            )
        ).first()
        if used is None:
            _failed(db, user_id, "recovery_code")
            raise Unauthorized("the recovery code is wrong or used", code="bad_factor")
        used.used_at = utcnow()
        method = "recovery_code"
    if factor.key_version != ring.current_version("factor"):
        factor.secret_sealed, factor.key_version = _seal(ring, owner_id, _open(ring, factor))
    chain.append(db, "login_factor", actor_id=user_id, subject_id=user_id, detail={"kind": method})
    db.commit()
    return method


def _failed(db: Session, user_id: str, method: str) -> None:
    db.rollback()
    chain.append(db, "factor_failed", subject_id=user_id, detail={"kind": method})
    db.commit()


def set_policy(db: Session, actor_id: str, is_required: bool) -> bool:
    """Require (or stop requiring) a second factor of counsel and admins."""
    policy = db.get(FactorPolicy, 1)
    if policy is None:
        policy = FactorPolicy(id=1)
        db.add(policy)
    policy.is_required_for_staff = is_required
    policy.updated_at = utcnow()
    chain.append(
        db, "factor_policy_set", actor_id=actor_id, detail={"required_for_staff": is_required}
    )
    db.commit()
    return is_required


def reseal_all(db: Session, ring: Keyring) -> int:
    """Re-seal every TOTP secret under the current factor key (after a rotation)."""
    current = ring.current_version("factor")
    factors = db.scalars(select(TotpFactor).where(TotpFactor.key_version != current)).all()
    for factor in factors:
        factor.secret_sealed, factor.key_version = _seal(ring, factor.user_id, _open(ring, factor))
    db.commit()
    return len(factors)


def sealed_with(db: Session, version: int) -> int:
    """How many TOTP secrets are sealed under a factor key version."""
    query = select(func.count()).select_from(TotpFactor).where(TotpFactor.key_version == version)
    return int(db.scalar(query) or 0)


def begin_passkey(
    db: Session, ring: Keyring, user_id: str, rp: passkeys.RelyingParty
) -> tuple[str, bytes]:
    """Creation options for a new passkey of the account's own (never a decoy's)."""
    _own_account(db, user_id)
    return passkeys.registration_options(db, ring, user_id, rp)


def remove_passkey(db: Session, user_id: str, passkey_id: str, default: bool) -> None:
    """Delete a passkey unless it is the last factor of a role that must keep one."""
    user = _own_account(db, user_id)
    others = passkeys.count(db, user_id) - 1 + (1 if _confirmed(db, user_id) else 0)
    may = not is_required(db, user, default) or others > 0
    passkeys.remove_passkey(db, user_id, passkey_id, may)


def passkey_sign_in(
    db: Session, rp: passkeys.RelyingParty, challenge: bytes, user_id: str, credential: Any
) -> None:
    """Check a passkey as the second factor of a pending sign-in (the owner's, for a decoy)."""
    try:
        passkeys.verify_assertion(db, rp, challenge, credential, factor_owner(db, user_id))
    except (Unauthorized, InvalidRequest):
        _failed(db, user_id, "passkey")
        raise
    chain.append(
        db, "login_factor", actor_id=user_id, subject_id=user_id, detail={"kind": "passkey"}
    )
    db.commit()


def unlock_with_passkey(
    db: Session, rp: passkeys.RelyingParty, challenge: bytes, credential: Any
) -> tuple[User, Passkey]:
    """Sign in with a PRF passkey alone (§21.9): the account and the passkey's wrapped copy."""
    passkey = passkeys.verify_assertion(db, rp, challenge, credential, None)
    user = db.get(User, passkey.user_id)
    if user is None or user.is_disabled:
        db.rollback()
        raise Unauthorized("this passkey opens no account", code="bad_passkey")
    if passkey.prf_wrapped_keys is None or passkey.prf_key_version != user.key_version:
        db.rollback()
        raise Unauthorized(
            "this passkey is a second factor only; sign in with your passphrase",
            code="passkey_cannot_unlock",
        )
    chain.append(db, "login", actor_id=user.id, subject_id=user.id, detail={"kind": "passkey"})
    db.commit()
    return user, passkey
