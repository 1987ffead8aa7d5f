"""Passkeys (protocol §21.8, §21.9): WebAuthn credentials as a second factor and, where the
authenticator has the PRF extension, as a way in of their own.

Verification is the `webauthn` package's; this module keeps the credentials, refuses a
credential of another account and a signature counter that does not move forward, and
holds the PRF-wrapped copy of the key bundle, which the server cannot open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, parse_authenticator_data
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from vault.accounts import services as accounts
from vault.accounts.models import Passkey, User
from vault.audit import chain
from vault.db import utcnow
from vault.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from vault.keyring import Keyring
from vault.protocol import keys as pkeys

RP_NAME = "Haven"
MAX_PASSKEYS = 10
ALGORITHMS = [COSEAlgorithmIdentifier.EDDSA, COSEAlgorithmIdentifier.ECDSA_SHA_256]


@dataclass(frozen=True)
class RelyingParty:
    """Who credentials are bound to: the RP ID (a host name) and the page's origin."""

    rp_id: str
    origin: str


def _bad(message: str, code: str = "bad_passkey") -> Unauthorized:
    return Unauthorized(message, code=code)


def registration_options(
    db: Session, ring: Keyring, user_id: str, rp: RelyingParty
) -> tuple[str, bytes]:
    """Creation options (JSON) for a new passkey of the account, and their challenge."""
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("no such account")
    owned = list_passkeys(db, user_id)
    if len(owned) >= MAX_PASSKEYS:
        raise Conflict(f"at most {MAX_PASSKEYS} passkeys", code="too_many_passkeys")
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=RP_NAME,
        user_name=accounts.display_name(ring, user),
        user_id=user.id.encode("ascii"),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=p.credential_id) for p in owned],
        supported_pub_key_algs=ALGORITHMS,
    )
    return options_to_json(options), options.challenge


def add_passkey(
    db: Session,
    user_id: str,
    rp: RelyingParty,
    challenge: bytes,
    credential: dict[str, Any],
    name: str,
) -> Passkey:
    """Verify a new credential against its challenge and keep it."""
    try:
        found = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            require_user_verification=True,
            supported_pub_key_algs=ALGORITHMS,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"the new passkey does not verify: {exc}", code="bad_passkey") from exc
    if db.scalar(select(Passkey.id).where(Passkey.credential_id == found.credential_id)):
        raise Conflict("this passkey is already registered", code="passkey_exists")
    passkey = Passkey(
        user_id=user_id,
        credential_id=found.credential_id,
        public_key=found.credential_public_key,
        sign_count=found.sign_count,
        name=name,
    )
    db.add(passkey)
    db.flush()
    chain.append(
        db, "factor_enrolled", actor_id=user_id, subject_id=user_id, detail={"kind": "passkey"}
    )
    db.commit()
    return passkey


def list_passkeys(db: Session, user_id: str) -> list[Passkey]:
    """The account's passkeys, oldest first."""
    query = select(Passkey).where(Passkey.user_id == user_id)
    return list(db.scalars(query.order_by(Passkey.created_at, Passkey.id)))


def count(db: Session, user_id: str) -> int:
    """How many passkeys the account has."""
    query = select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id)
    return int(db.scalar(query) or 0)


def owned(db: Session, user_id: str, passkey_id: str) -> Passkey:
    """One of the account's passkeys; 404 for any other."""
    passkey = db.get(Passkey, passkey_id)
    if passkey is None or passkey.user_id != user_id:
        raise NotFound("no such passkey")
    return passkey


def rename(db: Session, user_id: str, passkey_id: str, name: str) -> Passkey:
    """Give a passkey a name its owner recognises."""
    passkey = owned(db, user_id, passkey_id)
    passkey.name = name
    db.commit()
    return passkey


def set_unlock(db: Session, user_id: str, passkey_id: str, wrapped_keys: bytes) -> Passkey:
    """Keep the key bundle wrapped under the passkey's PRF-derived key (§21.9)."""
    passkey = owned(db, user_id, passkey_id)
    user = db.get(User, user_id)
    assert user is not None
    if len(wrapped_keys) != pkeys.WRAPPED_BUNDLE_BYTES:
        raise InvalidRequest("wrapped_keys has the wrong length")
    passkey.prf_wrapped_keys = wrapped_keys
    passkey.prf_key_version = user.key_version
    chain.append(db, "passkey_unlock_set", actor_id=user_id, subject_id=user_id)
    db.commit()
    return passkey


def forget_unlocks(db: Session, user_id: str) -> None:
    """Drop every PRF-wrapped copy (new key pairs: the copies hold the old ones)."""
    for passkey in list_passkeys(db, user_id):
        passkey.prf_wrapped_keys = None
        passkey.prf_key_version = None


def authentication_options(rp: RelyingParty, allowed: list[Passkey] | None) -> tuple[str, bytes]:
    """Request options (JSON) and their challenge; ``allowed`` None: any discoverable one."""
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        allow_credentials=None
        if allowed is None
        else [PublicKeyCredentialDescriptor(id=p.credential_id) for p in allowed],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options), options.challenge


def _credential_id(credential: dict[str, Any]) -> bytes:
    raw = credential.get("rawId")
    if not isinstance(raw, str):
        raise InvalidRequest("passkey.rawId: a base64url string is required", code="invalid_field")
    try:
        return base64url_to_bytes(raw)
    except ValueError as exc:
        raise InvalidRequest("passkey.rawId is not base64url", code="invalid_field") from exc


def _sign_count(credential: dict[str, Any]) -> int:
    response = credential.get("response")
    data = response.get("authenticatorData") if isinstance(response, dict) else None
    if not isinstance(data, str):
        raise _bad("the passkey's answer has no authenticator data")
    try:
        return int(parse_authenticator_data(base64url_to_bytes(data)).sign_count)
    except (WebAuthnException, ValueError) as exc:
        raise _bad("the passkey's authenticator data is malformed") from exc


def verify_assertion(
    db: Session,
    rp: RelyingParty,
    challenge: bytes,
    credential: dict[str, Any],
    owner_id: str | None,
) -> Passkey:
    """Check an assertion: a known credential (of ``owner_id`` when given), this challenge
    and origin, user verification, and a signature counter that moved forward."""
    passkey = db.scalars(
        select(Passkey).where(Passkey.credential_id == _credential_id(credential))
    ).first()
    if passkey is None or (owner_id is not None and passkey.user_id != owner_id):
        raise _bad("this passkey is not one of this account's")
    counter = _sign_count(credential)
    if (counter or passkey.sign_count) and counter <= passkey.sign_count:
        raise _bad(
            "this passkey's signature counter went backwards: it may have been copied",
            code="passkey_cloned",
        )
    try:
        found = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise _bad(f"the passkey's answer does not verify: {exc}") from exc
    passkey.sign_count = found.new_sign_count
    passkey.last_used_at = utcnow()
    return passkey


def remove_passkey(db: Session, user_id: str, passkey_id: str, may_remove_last: bool) -> None:
    """Delete a passkey and its PRF way in; ``may_remove_last`` False keeps the last factor."""
    passkey = owned(db, user_id, passkey_id)
    if not may_remove_last:
        raise Conflict(
            "your role must keep a second factor; add another before removing this one",
            code="factor_required",
        )
    db.delete(passkey)
    chain.append(
        db, "factor_removed", actor_id=user_id, subject_id=user_id, detail={"kind": "passkey"}
    )
    db.commit()
