"""Split recovery, no escrow (protocol §22): a survivor's recovery key in three Shamir shares.

Share 1 is her recovery key itself; share 2 and share 3 are kept by holders: sealed to a
counsel's current key, or printed for a trusted person. The server stores commitments, her
signature and sealed shares only. A recovery through shares needs her own request, both
holders' releases and a waiting period during which any signed-in session of hers cancels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.accounts import services as accounts
from vault.accounts.models import (
    RecoverySetup,
    RecoveryShare,
    ReleasedShare,
    Role,
    ShareRecoveryRequest,
    ShareRequestState,
    User,
    UserKey,
)
from vault.audit import chain
from vault.cases.models import Case, CaseMember
from vault.clock import now
from vault.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from vault.keyring import Keyring
from vault.protocol import shares as pshares
from vault.protocol.keys import ProtocolError

BAD_REQUEST_CREDENTIALS = "username or passphrase of the recovery request is wrong"


@dataclass(frozen=True)
class HeldShareIn:
    """One holder of a new setup: an account (with its sealed share) or a printed share."""

    slot: int
    commitment: bytes
    holder_id: str | None = None
    holder_key_version: int | None = None
    sealed_share: bytes | None = None


@dataclass(frozen=True)
class NewSetup:
    """What a survivor's client sends to split her recovery key."""

    setup_id: bytes
    key_version: int
    signature: bytes
    holders: list[HeldShareIn]


@dataclass(frozen=True)
class ShareIn:
    """A share released to a request: its slot, commitment and sealed payload."""

    setup_id: bytes
    slot: int
    commitment: bytes
    sealed_share: bytes


def setup_of(db: Session, user_id: str) -> RecoverySetup | None:
    """The account's split recovery setup, if any."""
    return db.get(RecoverySetup, user_id)


def open_request(db: Session, user_id: str) -> ShareRecoveryRequest | None:
    """The account's waiting recovery request, if any."""
    return db.scalars(
        select(ShareRecoveryRequest).where(
            ShareRecoveryRequest.user_id == user_id,
            ShareRecoveryRequest.state == ShareRequestState.WAITING,
        )
    ).first()


def latest_request(db: Session, user_id: str) -> ShareRecoveryRequest | None:
    """The account's most recent recovery request, open or closed."""
    return db.scalars(
        select(ShareRecoveryRequest)
        .where(ShareRecoveryRequest.user_id == user_id)
        .order_by(ShareRecoveryRequest.created_at.desc(), ShareRecoveryRequest.id)
    ).first()


def _survivor(db: Session, user_id: str) -> User:
    return accounts.survivor_own_account(
        db, user_id, "split recovery is for survivors' own accounts"
    )


def _is_her_counsel(db: Session, survivor_id: str, counsel_id: str) -> bool:
    query = (
        select(CaseMember.user_id)
        .join(Case, Case.id == CaseMember.case_id)
        .where(
            Case.survivor_id == survivor_id,
            CaseMember.user_id == counsel_id,
            CaseMember.role == Role.COUNSEL,
        )
    )
    return db.scalar(query) is not None


def _check_holder(db: Session, user: User, held: HeldShareIn) -> None:
    if held.holder_id is None:
        if held.sealed_share is not None or held.holder_key_version is not None:
            raise InvalidRequest("a printed share has no sealed copy", code="invalid_field")
        return
    holder = db.get(User, held.holder_id)
    if holder is None or holder.is_disabled or not _is_her_counsel(db, user.id, holder.id):
        raise InvalidRequest(
            "a holder account must be counsel on one of her cases", code="bad_holder"
        )
    if held.holder_key_version != holder.key_version:
        raise Conflict(
            "the holder's keys changed; seal to their current key", code="stale_key_version"
        )
    if held.sealed_share is None or len(held.sealed_share) != pshares.SEALED_PAYLOAD_BYTES:
        raise InvalidRequest("sealed_share must be 99 bytes", code="invalid_field")


def set_setup(db: Session, ring: Keyring, user_id: str, new: NewSetup) -> RecoverySetup:
    """Store a signed split of her recovery key, replacing any earlier one."""
    user = _survivor(db, user_id)
    if sorted(h.slot for h in new.holders) != list(pshares.HELD_SLOTS):
        raise InvalidRequest("holders are slot 2 and slot 3", code="invalid_field")
    holders = sorted(new.holders, key=lambda h: h.slot)
    if new.key_version != user.key_version:
        raise Conflict("sign with your current key version", code="stale_key_version")
    try:
        pshares.verify_setup(
            accounts.current_keys(user).ed25519,
            accounts.display_name(ring, user),
            new.setup_id,
            new.key_version,
            [h.commitment for h in holders],
            new.signature,
        )
    except ProtocolError as exc:
        raise InvalidRequest(str(exc), code="bad_signature") from exc
    for held in holders:
        _check_holder(db, user, held)
    if open_request(db, user.id) is not None:
        raise Conflict("a recovery through shares is waiting", code="share_recovery_open")
    old = db.get(RecoverySetup, user.id)
    if old is not None:
        db.delete(old)
        db.flush()
    setup = RecoverySetup(
        user_id=user.id,
        setup_id=new.setup_id,
        key_version=new.key_version,
        signature=new.signature,
        shares=[
            RecoveryShare(
                slot=h.slot,
                commitment=h.commitment,
                holder_id=h.holder_id,
                holder_key_version=h.holder_key_version,
                sealed_share=h.sealed_share,
            )
            for h in holders
        ],
    )
    db.add(setup)
    chain.append(db, "recovery_shares_set", actor_id=user.id, subject_id=user.id, ring=ring)
    db.commit()
    return setup


def remove_setup(db: Session, user_id: str) -> None:
    """Delete her split; a waiting request is cancelled with it."""
    _survivor(db, user_id)
    setup = db.get(RecoverySetup, user_id)
    if setup is None:
        raise NotFound("no recovery shares are set", code="no_recovery_shares")
    _close(db, open_request(db, user_id), ShareRequestState.CANCELLED)
    db.delete(setup)
    chain.append(db, "recovery_shares_removed", actor_id=user_id, subject_id=user_id)
    db.commit()


def forget_setup(db: Session, user_id: str) -> None:
    """Drop a setup made stale by a new recovery key (key rotation, §14); no commit."""
    setup = db.get(RecoverySetup, user_id)
    if setup is not None:
        _close(db, open_request(db, user_id), ShareRequestState.CANCELLED)
        db.delete(setup)


def _close(db: Session, req: ShareRecoveryRequest | None, state: ShareRequestState) -> None:
    if req is None:
        return
    req.state = state
    req.closed_at = now()
    req.releases.clear()  # sealed shares of a closed request are not kept


def cancel(db: Session, user_id: str) -> ShareRecoveryRequest:
    """Cancel the waiting recovery through shares, from any signed-in session of hers."""
    req = open_request(db, user_id)
    if req is None:
        raise NotFound("no recovery through shares is waiting", code="no_share_recovery")
    _close(db, req, ShareRequestState.CANCELLED)
    chain.append(db, "share_recovery_cancelled", actor_id=user_id, subject_id=user_id)
    db.commit()
    return req


def start(
    db: Session,
    ring: Keyring,
    cost: accounts.HashCost,
    username: str,
    auth_key: bytes,
    request_key: bytes,
    wait: timedelta,
) -> ShareRecoveryRequest:
    """Open a recovery through shares for a survivor who lost passphrase and recovery key."""
    user = accounts.find_user(db, ring, username)
    setup = db.get(RecoverySetup, user.id) if user is not None else None
    if user is None or setup is None or user.is_disabled:
        raise NotFound("no recovery shares for this account", code="no_recovery_shares")
    if open_request(db, user.id) is not None:
        raise Conflict("a recovery through shares is already waiting", code="share_recovery_open")
    req = ShareRecoveryRequest(
        user_id=user.id,
        setup_id=setup.setup_id,
        auth_hash=accounts.hash_auth_key(auth_key, cost),
        request_key=request_key,
        state=ShareRequestState.WAITING,
        ready_at=now() + wait,
    )
    db.add(req)
    db.flush()
    chain.append(
        db, "share_recovery_started", subject_id=user.id, detail={"request": req.id}, ring=ring
    )
    db.commit()
    return req


def authenticate(
    db: Session, ring: Keyring, cost: accounts.HashCost, username: str, auth_key: bytes
) -> ShareRecoveryRequest:
    """The waiting request of an account, proved by its auth subkey (same work if none)."""
    user = accounts.find_user(db, ring, username)
    req = open_request(db, user.id) if user is not None else None
    stored = req.auth_hash if req is not None else accounts.decoy_hash(cost)
    if not accounts.verify_auth_key(stored, auth_key) or req is None:
        chain.append(db, "share_recovery_failed", subject_id=user.id if user else None, ring=ring)
        db.commit()
        raise Unauthorized(BAD_REQUEST_CREDENTIALS, code="bad_credentials")
    return req


def _check_share(db: Session, req: ShareRecoveryRequest, share: ShareIn) -> RecoveryShare:
    setup = db.get(RecoverySetup, req.user_id)
    if setup is None or share.setup_id != setup.setup_id:
        raise InvalidRequest("this share belongs to another account", code="share_wrong_account")
    held = next((s for s in setup.shares if s.slot == share.slot), None)
    if held is None or held.commitment != share.commitment:
        raise InvalidRequest("this share does not match the one she set", code="share_invalid")
    if len(share.sealed_share) != pshares.SEALED_PAYLOAD_BYTES:
        raise InvalidRequest("sealed_share must be 99 bytes", code="invalid_field")
    if any(r.slot == share.slot for r in req.releases):
        raise Conflict("this share was already released", code="share_released")
    return held


def _release(
    db: Session, req: ShareRecoveryRequest, share: ShareIn, released_by: str | None
) -> ShareRecoveryRequest:
    req.releases.append(
        ReleasedShare(slot=share.slot, sealed_share=share.sealed_share, released_by=released_by)
    )
    chain.append(
        db,
        "recovery_share_released",
        actor_id=released_by,
        subject_id=req.user_id,
        detail={"request": req.id, "slot": share.slot},
    )
    db.commit()
    return req


def enter_share(db: Session, req: ShareRecoveryRequest, share: ShareIn) -> ShareRecoveryRequest:
    """A printed share typed or scanned on her device, sealed there to the request's key."""
    _check_share(db, req, share)
    return _release(db, req, share, None)


def release(db: Session, holder_id: str, request_id: str, share: ShareIn) -> ShareRecoveryRequest:
    """A holder account releases its share to a waiting request."""
    req = db.get(ShareRecoveryRequest, request_id)
    setup = db.get(RecoverySetup, req.user_id) if req is not None else None
    holds = setup is not None and any(
        s.holder_id == holder_id and s.slot == share.slot for s in setup.shares
    )
    if req is None or not holds:
        raise NotFound("no such recovery request")
    if req.state != ShareRequestState.WAITING:
        raise Conflict("this recovery request is closed", code="share_recovery_closed")
    _check_share(db, req, share)
    return _release(db, req, share, holder_id)


def is_ready(req: ShareRecoveryRequest, at: datetime) -> bool:
    """Whether the waiting period is over and both held shares are in."""
    return at >= req.ready_at and len(req.releases) == len(pshares.HELD_SLOTS)


def held_by(db: Session, holder_id: str) -> list[RecoveryShare]:
    """The shares an account keeps for others."""
    return list(
        db.scalars(
            select(RecoveryShare)
            .where(RecoveryShare.holder_id == holder_id)
            .order_by(RecoveryShare.setup_user_id)
        )
    )


def owner_key(db: Session, setup: RecoverySetup) -> UserKey:
    """The survivor's key record that signed a setup."""
    key = db.scalar(
        select(UserKey).where(
            UserKey.user_id == setup.user_id, UserKey.version == setup.key_version
        )
    )
    if key is None:
        raise NotFound("the setup's signing key is gone")
    return key


def reseal(
    db: Session, holder_id: str, setup_id: bytes, key_version: int, sealed_share: bytes
) -> RecoveryShare:
    """A holder who replaced their keys (§14) seals the share again to the new key."""
    holder = db.get(User, holder_id)
    share = db.scalars(
        select(RecoveryShare)
        .join(RecoverySetup, RecoverySetup.user_id == RecoveryShare.setup_user_id)
        .where(RecoveryShare.holder_id == holder_id, RecoverySetup.setup_id == setup_id)
    ).first()
    if holder is None or share is None:
        raise NotFound("no such held share")
    if key_version != holder.key_version:
        raise Conflict("seal to your current key version", code="stale_key_version")
    if len(sealed_share) != pshares.SEALED_PAYLOAD_BYTES:
        raise InvalidRequest("sealed_share must be 99 bytes", code="invalid_field")
    share.sealed_share = sealed_share
    share.holder_key_version = key_version
    chain.append(db, "recovery_share_resealed", actor_id=holder_id, subject_id=share.setup_user_id)
    db.commit()
    return share


def close_on_recovery(db: Session, user_id: str) -> None:
    """Her passphrase was set through the recovery key: a waiting request ends (no commit).

    Completed when both shares were in and the waiting period over (that is how she got the
    key), cancelled otherwise.
    """
    req = open_request(db, user_id)
    if req is None:
        return
    state = ShareRequestState.COMPLETED if is_ready(req, now()) else ShareRequestState.CANCELLED
    _close(db, req, state)
    chain.append(db, f"share_recovery_{state.value}", actor_id=user_id, subject_id=user_id)
