"""Split recovery routes (protocol §22): set and remove the split, hold and release shares,
start, follow and cancel a recovery through shares."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from flask import Blueprint, Response, current_app, jsonify
from flask_login import current_user

from vault import db
from vault.accounts import shares
from vault.accounts.limits import account_key, server_hash_cost
from vault.accounts.models import RecoverySetup, RecoveryShare, Role, ShareRecoveryRequest, User
from vault.accounts.services import display_name
from vault.accounts.views import KeyOut, key_json
from vault.api import (
    ANONYMOUS,
    ANY_ROLE,
    B64,
    NO_CONTENT,
    Body,
    Out,
    Timestamp,
    b64_exact,
    endpoint,
    me,
    ok,
)
from vault.api import parse_body as parse
from vault.clock import now
from vault.extensions import failed, limiter, setting_limit
from vault.keyring import keyring
from vault.protocol import shares as pshares
from vault.protocol.encoding import b64encode

bp = Blueprint("shares", __name__, url_prefix="/api/v1")

SURVIVOR = {Role.SURVIVOR}
SEALED = pshares.SEALED_PAYLOAD_BYTES


class HolderBody(Body):
    """A holder of share 2 or 3: a counsel account with the share sealed to it, or printed."""

    slot: Literal[2, 3]
    kind: Literal["account", "printed"]
    commitment: b64_exact(32)  # type: ignore[valid-type]
    user_id: str | None = None
    key_version: int | None = None
    sealed_share: b64_exact(SEALED) | None = None  # type: ignore[valid-type]


class SetupBody(Body):
    """A signed split of the recovery key."""

    setup_id: b64_exact(16)  # type: ignore[valid-type]
    key_version: int
    signature: b64_exact(64)  # type: ignore[valid-type]
    holders: list[HolderBody]


class ShareBody(Body):
    """A share released to a request, sealed to the request's key."""

    setup_id: b64_exact(16)  # type: ignore[valid-type]
    slot: Literal[2, 3]
    commitment: b64_exact(32)  # type: ignore[valid-type]
    sealed_share: b64_exact(SEALED)  # type: ignore[valid-type]


class StartBody(Body):
    """Open a recovery through shares: the new passphrase's request subkey and key."""

    username: str
    auth_key: b64_exact(32)  # type: ignore[valid-type]
    request_key: b64_exact(32)  # type: ignore[valid-type]


class ProveBody(Body):
    """Prove the waiting request's new passphrase."""

    username: str
    auth_key: b64_exact(32)  # type: ignore[valid-type]


class EnterShareBody(ProveBody):
    """A printed share entered on her device, sealed there to the request's key."""

    share: ShareBody


class ResealBody(Body):
    """A held share sealed again to the holder's new key."""

    setup_id: b64_exact(16)  # type: ignore[valid-type]
    key_version: int
    sealed_share: b64_exact(SEALED)  # type: ignore[valid-type]


class RequestOut(Out):
    """A recovery through shares, as its owner and holders see it."""

    id: str
    request_key: B64
    state: Literal["waiting", "cancelled", "completed"]
    created_at: Timestamp
    ready_at: Timestamp
    closed_at: Timestamp | None
    released: list[int]


class HolderOut(Out):
    """Who keeps share 2 or 3."""

    slot: int
    kind: Literal["account", "printed"]
    commitment: B64
    user_id: str | None
    username: str | None
    key_version: int | None


class SetupOut(Out):
    """The split as stored."""

    setup_id: B64
    key_version: int
    signature: B64
    created_at: Timestamp
    holders: list[HolderOut]


class MySharesReply(Out):
    """Her split (null when none) and her latest recovery request (null when none)."""

    setup: SetupOut | None
    request: RequestOut | None


class RequestReply(Out):
    """A recovery request."""

    request: RequestOut


class HeldOut(Out):
    """A share this account keeps for a survivor."""

    owner_id: str
    owner_username: str
    owner_key: KeyOut
    setup: SetupOut
    slot: int
    key_version: int | None
    sealed_share: B64 | None
    request: RequestOut | None


class HeldReply(Out):
    """The shares this account keeps."""

    held: list[HeldOut]


class SealedShareOut(Out):
    """A released share, sealed to the request's key."""

    slot: int
    sealed_share: B64


class StatusReply(Out):
    """The waiting request; when it is ready, the setup and both sealed shares."""

    request: RequestOut
    setup: SetupOut | None
    shares: list[SealedShareOut]


def request_json(req: ShareRecoveryRequest | None) -> dict[str, Any] | None:
    """A request as JSON (sealed shares are never in it)."""
    if req is None:
        return None
    return {
        "id": req.id,
        "request_key": b64encode(req.request_key),
        "state": req.state.value,
        "created_at": req.created_at.isoformat(),
        "ready_at": req.ready_at.isoformat(),
        "closed_at": req.closed_at.isoformat() if req.closed_at else None,
        "released": [r.slot for r in req.releases],
    }


def _holder_json(share: RecoveryShare) -> dict[str, Any]:
    holder = db.session().get(User, share.holder_id) if share.holder_id else None
    return {
        "slot": share.slot,
        "kind": "printed" if holder is None else "account",
        "commitment": b64encode(share.commitment),
        "user_id": share.holder_id,
        "username": display_name(keyring(), holder) if holder is not None else None,
        "key_version": share.holder_key_version,
    }


def setup_json(setup: RecoverySetup | None) -> dict[str, Any] | None:
    """A setup as JSON: holders and commitments, never a share."""
    if setup is None:
        return None
    return {
        "setup_id": b64encode(setup.setup_id),
        "key_version": setup.key_version,
        "signature": b64encode(setup.signature),
        "created_at": setup.created_at.isoformat(),
        "holders": [_holder_json(s) for s in setup.shares],
    }


def _mine(user_id: str) -> dict[str, Any]:
    session = db.session()
    return {
        "setup": setup_json(shares.setup_of(session, user_id)),
        "request": request_json(shares.latest_request(session, user_id)),
    }


def _share(body: ShareBody) -> shares.ShareIn:
    return shares.ShareIn(body.setup_id, body.slot, body.commitment, body.sealed_share)


def _per_account() -> str:
    return f"shares:{current_user.get_id()}"


@bp.get("/account/recovery-shares")
@endpoint(
    "My split recovery setup and latest recovery request (null when none)",
    roles=ANY_ROLE,
    replies=ok(MySharesReply),
)
def get_mine() -> Response:
    """Show her split and whether a recovery through shares is waiting."""
    return jsonify(_mine(me().id))


@bp.post("/account/recovery-shares")
@endpoint(
    "Split my recovery key: set the holders of shares 2 and 3",
    roles=SURVIVOR,
    body=SetupBody,
    replies=ok(MySharesReply, 201),
)
def set_mine() -> tuple[Response, int]:
    """Store the signed split, replacing any earlier one."""
    body = parse(SetupBody)
    new = shares.NewSetup(
        body.setup_id,
        body.key_version,
        body.signature,
        [
            shares.HeldShareIn(
                h.slot,
                h.commitment,
                h.user_id if h.kind == "account" else None,
                h.key_version,
                h.sealed_share,
            )
            for h in body.holders
        ],
    )
    shares.set_setup(db.session(), keyring(), me().id, new)
    return jsonify(_mine(me().id)), 201


@bp.delete("/account/recovery-shares")
@endpoint("Remove my split (a waiting request is cancelled)", roles=SURVIVOR, replies=NO_CONTENT)
def remove_mine() -> tuple[str, int]:
    """Delete the split and every held share of it."""
    shares.remove_setup(db.session(), me().id)
    return "", 204


@bp.post("/account/recovery-shares/cancel")
@endpoint(
    "Cancel the waiting recovery through shares (any signed-in session of hers)",
    roles=SURVIVOR,
    replies=ok(RequestReply),
)
def cancel_mine() -> Response:
    """Close the request; its released shares are deleted."""
    return jsonify({"request": request_json(shares.cancel(db.session(), me().id))})


@bp.get("/recovery-shares/held")
@endpoint("Shares I keep for survivors, with their requests", roles=ANY_ROLE, replies=ok(HeldReply))
def get_held() -> Response:
    """List the shares sealed to this account and each owner's latest request."""
    session = db.session()
    held = []
    for share in shares.held_by(session, me().id):
        setup = session.get(RecoverySetup, share.setup_user_id)
        assert setup is not None
        owner = session.get(User, setup.user_id)
        assert owner is not None
        held.append(
            {
                "owner_id": owner.id,
                "owner_username": display_name(keyring(), owner),
                "owner_key": key_json(shares.owner_key(session, setup)),
                "setup": setup_json(setup),
                "slot": share.slot,
                "key_version": share.holder_key_version,
                "sealed_share": b64encode(share.sealed_share) if share.sealed_share else None,
                "request": request_json(shares.latest_request(session, owner.id)),
            }
        )
    return jsonify({"held": held})


@bp.post("/recovery-shares/held/reseal")
@endpoint(
    "Seal a held share again to my new key (after a key rotation)",
    roles=ANY_ROLE,
    body=ResealBody,
    replies=NO_CONTENT,
)
def reseal_held() -> tuple[str, int]:
    """Replace the sealed copy of a share this account keeps."""
    body = parse(ResealBody)
    shares.reseal(db.session(), me().id, body.setup_id, body.key_version, body.sealed_share)
    return "", 204


@bp.post("/recovery-shares/requests/<request_id>/release")
@endpoint(
    "Release my share to a waiting recovery request",
    roles=ANY_ROLE,
    body=ShareBody,
    replies=ok(RequestReply),
)
def release_held(request_id: str) -> Response:
    """Store the share sealed to the request's key, after checking its commitment."""
    body = parse(ShareBody)
    req = shares.release(db.session(), me().id, request_id, _share(body))
    return jsonify({"request": request_json(req)})


@bp.post("/auth/share-recovery/start")
@limiter.limit(setting_limit("HAVEN_LIMIT_RECOVERY"))
@limiter.limit(setting_limit("HAVEN_LIMIT_RECOVERY"), key_func=account_key)
@endpoint(
    "Start a recovery through shares (passphrase and recovery key both lost)",
    roles=ANONYMOUS,
    body=StartBody,
    replies=ok(RequestReply, 201),
)
def start() -> tuple[Response, int]:
    """Open the request; the waiting period starts now."""
    body = parse(StartBody)
    wait = timedelta(seconds=current_app.config["HAVEN_SHARE_RECOVERY_WAIT_SECONDS"])
    req = shares.start(
        db.session(),
        keyring(),
        server_hash_cost(),
        body.username,
        body.auth_key,
        body.request_key,
        wait,
    )
    return jsonify({"request": request_json(req)}), 201


@bp.post("/auth/share-recovery/status")
@limiter.limit(setting_limit("HAVEN_LIMIT_RECOVERY"), key_func=account_key, deduct_when=failed)
@endpoint(
    "Follow my recovery through shares; both sealed shares once it is ready",
    roles=ANONYMOUS,
    body=ProveBody,
    replies=ok(StatusReply),
)
def status() -> Response:
    """The request, and once ready the setup and the two shares sealed to its key."""
    body = parse(ProveBody)
    session = db.session()
    req = shares.authenticate(session, keyring(), server_hash_cost(), body.username, body.auth_key)
    ready = shares.is_ready(req, now())
    return jsonify(
        {
            "request": request_json(req),
            "setup": setup_json(shares.setup_of(session, req.user_id)) if ready else None,
            "shares": [
                {"slot": r.slot, "sealed_share": b64encode(r.sealed_share)} for r in req.releases
            ]
            if ready
            else [],
        }
    )


@bp.post("/auth/share-recovery/share")
@limiter.limit(setting_limit("HAVEN_LIMIT_RECOVERY"), key_func=account_key, deduct_when=failed)
@endpoint(
    "Enter a printed share on my device for my waiting recovery",
    roles=ANONYMOUS,
    body=EnterShareBody,
    replies=ok(RequestReply),
)
def enter_share() -> Response:
    """Check the share's account and commitment, then keep it sealed to the request's key."""
    body = parse(EnterShareBody)
    session = db.session()
    req = shares.authenticate(session, keyring(), server_hash_cost(), body.username, body.auth_key)
    return jsonify({"request": request_json(shares.enter_share(session, req, _share(body.share)))})
