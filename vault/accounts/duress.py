"""The duress passphrase: a second passphrase that opens a hidden decoy account (protocol §18).

The decoy is an ordinary survivor account with its own key pairs and its own empty case,
reached only through the DuressLink at sign-in: its username lookup is random, so no route
that takes a name finds it, and it is a member of nothing of the real account.
"""

from __future__ import annotations

from dataclasses import dataclass

import nacl.utils
from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.accounts import services as accounts
from vault.accounts.models import DuressLink, KeyStatus, Role, User, UserKey
from vault.audit import chain
from vault.cases.models import Case, CaseMember
from vault.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from vault.keyring import Keyring
from vault.protocol import keys as pkeys
from vault.protocol import serverdata


@dataclass(frozen=True)
class NewDuress:
    """What a client sends to set a duress passphrase (§18.3)."""

    current_auth_key: bytes
    auth_key: bytes
    wrapped_keys: bytes
    public_keys: pkeys.PublicKeys
    is_alerting: bool


def settings(db: Session, user_id: str) -> DuressLink | None:
    """The account's duress setting, if it has one (never for a decoy)."""
    return db.get(DuressLink, user_id)


def _real_account(db: Session, user_id: str) -> User:
    return accounts.survivor_own_account(
        db, user_id, "a duress passphrase is for survivors' own accounts"
    )


def _prove(db: Session, user: User, current_auth_key: bytes) -> None:
    if not accounts.verify_auth_key(user.auth_hash, current_auth_key):
        chain.append(db, "duress_change_failed", actor_id=user.id, subject_id=user.id)
        db.commit()
        raise Unauthorized("the current passphrase is wrong", code="bad_credentials")


def set_duress(
    db: Session, ring: Keyring, cost: accounts.HashCost, user_id: str, new: NewDuress
) -> DuressLink:
    """Create the decoy account and link it to the duress passphrase, in one transaction."""
    user = _real_account(db, user_id)
    if len(new.wrapped_keys) != pkeys.WRAPPED_BUNDLE_BYTES:
        raise InvalidRequest("wrapped_keys has the wrong length")
    username = accounts.display_name(ring, user)
    try:
        new.public_keys.verify(username)
    except pkeys.ProtocolError as exc:
        raise InvalidRequest(str(exc)) from exc
    if new.public_keys.version != 1:
        raise InvalidRequest("a decoy publishes key version 1")
    if db.get(DuressLink, user.id) is not None:
        raise Conflict("a duress passphrase is already set; remove it first", code="duress_set")
    _prove(db, user, new.current_auth_key)
    if accounts.verify_auth_key(user.auth_hash, new.auth_key):
        raise InvalidRequest(
            "the duress passphrase must differ from the passphrase", code="duress_same"
        )
    if new.public_keys.x25519 in {k.x25519 for k in user.keys}:
        raise InvalidRequest("the decoy needs key pairs of its own", code="invalid_field")
    data_version = ring.current_version("data")
    data_key = ring.current("data")
    decoy = User(
        role=Role.SURVIVOR,
        # Random, so no name ever finds the decoy; sign-in reaches it only through the link.
        username_lookup=nacl.utils.random(32),
        lookup_key_version=data_version,
        username_sealed=serverdata.seal_identifier(data_key, data_version, "username", username),
        data_key_version=data_version,
        kdf_salt=user.kdf_salt,
        kdf_opslimit=user.kdf_opslimit,
        kdf_memlimit=user.kdf_memlimit,
        auth_hash=accounts.hash_auth_key(new.auth_key, cost),
        recovery_auth_hash=accounts.hash_auth_key(nacl.utils.random(32), cost),
        wrapped_keys=new.wrapped_keys,
        recovery_wrapped_keys=nacl.utils.random(pkeys.WRAPPED_BUNDLE_BYTES),
        key_version=1,
        session_version=1,
    )
    pk = new.public_keys
    decoy.keys.append(
        UserKey(
            version=1,
            x25519=pk.x25519,
            ed25519=pk.ed25519,
            signature=pk.signature,
            status=KeyStatus.CURRENT,
        )
    )
    db.add(decoy)
    db.flush()
    accounts.publish_key(db, ring, decoy.keys[0])
    case = Case(survivor_id=decoy.id)
    case.members.append(CaseMember(user_id=decoy.id, role=Role.SURVIVOR))
    db.add(case)
    link = DuressLink(user_id=user.id, decoy_id=decoy.id, is_alerting=new.is_alerting)
    db.add(link)
    chain.append(db, "account_created", actor_id=decoy.id, subject_id=decoy.id, ring=ring)
    chain.append(db, "duress_set", actor_id=user.id, subject_id=user.id, ring=ring)
    db.commit()
    return link


def set_alerting(db: Session, user_id: str, is_alerting: bool) -> DuressLink:
    """Turn the silent alert to counsel on or off."""
    _real_account(db, user_id)
    link = db.get(DuressLink, user_id)
    if link is None:
        raise NotFound("no duress passphrase is set")
    link.is_alerting = is_alerting
    chain.append(
        db, "duress_alert_set", actor_id=user_id, subject_id=user_id, detail={"on": is_alerting}
    )
    db.commit()
    return link


def remove_duress(db: Session, user_id: str, current_auth_key: bytes) -> None:
    """Turn the duress passphrase off after proving the passphrase; the decoy is deleted."""
    user = _real_account(db, user_id)
    if db.get(DuressLink, user.id) is None:
        raise NotFound("no duress passphrase is set")
    _prove(db, user, current_auth_key)
    accounts.forget_duress(db, user.id)
    chain.append(db, "duress_removed", actor_id=user.id, subject_id=user.id)
    db.commit()


def decoy_ids(db: Session) -> set[str]:
    """Every decoy account's id (kept out of admin listings and re-keyed lookups)."""
    return set(db.scalars(select(DuressLink.decoy_id)))
