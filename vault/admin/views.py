"""Admin routes: key rotation, account states, aggregate figures. No content, ever."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from flask import Blueprint, Response, current_app, jsonify
from flask_login import current_user

from vault import db
from vault.accounts.models import Invite, Role
from vault.accounts.views import KeyOut, RoleName, key_json
from vault.admin import checks, services
from vault.api import (
    B64,
    NO_CONTENT,
    Body,
    Out,
    Timestamp,
    b64_exact,
    endpoint,
    me,
    ok,
    parse_body,
)
from vault.directory.witnesses import configured
from vault.extensions import failed, limiter, setting_limit
from vault.keyring import keyring, load_keyring
from vault.keyring import refresh as refresh_keyring
from vault.sessions import mark_recent_sign_in, require_recent_sign_in

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

ADMIN = {Role.ADMIN}
Purpose = Literal["session", "data", "logsign", "factor"]


class PurposeBody(Body):
    """Which server key."""

    purpose: Purpose


class RetireBody(Body):
    """Which version of which server key to retire."""

    purpose: Purpose
    version: int


class DisableBody(Body):
    """Disable or re-enable an account."""

    is_disabled: bool


class KeyVersionOut(Out):
    """One live version of a server key and how many ciphertexts use it."""

    purpose: Purpose
    version: int
    is_current: bool
    created_at: float
    uses: int | None


class KeysReply(Out):
    """Every live server key version."""

    keys: list[KeyVersionOut]


class RotatedReply(Out):
    """The new version of a server key."""

    purpose: Purpose
    version: int


class ReencryptReply(Out):
    """How many identifiers this batch re-sealed (0: nothing left)."""

    reencrypted: int


class AccountRow(Out):
    """An account as admins see it: no content, no case membership."""

    id: str
    role: RoleName
    username: str
    is_disabled: bool
    key_version: int
    key_status: Literal["current", "superseded", "compromised"]
    created_at: Timestamp


class AccountsReply(Out):
    """Every account."""

    accounts: list[AccountRow]


class DisabledReply(Out):
    """An account's new state."""

    id: str
    is_disabled: bool


class CompromisedReply(Out):
    """The key version now marked compromised."""

    key: KeyOut


class FiguresOut(Out):
    """Aggregate counts with no identities."""

    accounts_survivor: int
    accounts_counsel: int
    accounts_admin: int
    accounts_disabled: int
    cases: int
    log_entries: int


class FiguresReply(Out):
    """The aggregate figures."""

    figures: FiguresOut


def _keys_path() -> Path:
    return Path(current_app.config["HAVEN_KEYS_DIR"])


@bp.get("/keys")
@endpoint(
    "Live server key versions and how many ciphertexts use each", roles=ADMIN, replies=ok(KeysReply)
)
def key_status() -> Response:
    """Show the keyring."""
    # Read keys/ now, not the per-process copy refreshed every 2 s: a version retired a
    # moment ago has no file left to date.
    rows = services.key_status(db.session(), load_keyring(_keys_path()))
    return jsonify({"keys": [r.__dict__ for r in rows]})


@bp.post("/keys/rotate")
@endpoint(
    "Rotate a server key (new writes use the new version)",
    roles=ADMIN,
    body=PurposeBody,
    replies=ok(RotatedReply, 201),
)
def rotate() -> tuple[Response, int]:
    """Write a new version; data keys are then re-encrypted in batches by `reencrypt`."""
    require_recent_sign_in()
    body = parse_body(PurposeBody)
    version = services.rotate(db.session(), _keys_path(), body.purpose, me().id)
    # This process uses the new version at once; others notice within seconds.
    refresh_keyring(current_app, every=0)
    return jsonify({"purpose": body.purpose, "version": version}), 201


@bp.post("/keys/reencrypt")
@endpoint(
    "Re-seal one batch of identifiers under the current data key",
    roles=ADMIN,
    replies=ok(ReencryptReply),
)
def reencrypt() -> Response:
    """Run one batch; call again until it reports zero."""
    require_recent_sign_in()
    done = services.reencrypt_data(db.session(), load_keyring(_keys_path()), actor_id=me().id)
    return jsonify({"reencrypted": done})


@bp.post("/keys/retire")
@endpoint(
    "Retire an old server key version once nothing needs it",
    roles=ADMIN,
    body=RetireBody,
    replies=NO_CONTENT,
)
def retire() -> tuple[str, int]:
    """Drop the version from the keyring."""
    require_recent_sign_in()
    body = parse_body(RetireBody)
    lifetime = current_app.config["HAVEN_SESSION_MAX_SECONDS"]
    services.retire(db.session(), _keys_path(), body.purpose, body.version, lifetime, me().id)
    refresh_keyring(current_app, every=0)
    return "", 204


@bp.get("/accounts")
@endpoint(
    "Accounts with role, name and state (no content, no case membership)",
    roles=ADMIN,
    replies=ok(AccountsReply),
)
def accounts() -> Response:
    """List accounts."""
    return jsonify({"accounts": services.list_accounts(db.session(), keyring())})


@bp.post("/accounts/<user_id>/disabled")
@endpoint(
    "Disable or re-enable an account", roles=ADMIN, body=DisableBody, replies=ok(DisabledReply)
)
def set_disabled(user_id: str) -> Response:
    """Disabling ends every session of the account."""
    require_recent_sign_in()
    body = parse_body(DisableBody)
    user = services.set_disabled(db.session(), user_id, body.is_disabled, me())
    return jsonify({"id": user.id, "is_disabled": user.is_disabled})


@bp.post("/accounts/<user_id>/compromised")
@endpoint(
    "Mark an account's current key compromised: it must rotate at next login",
    roles=ADMIN,
    replies=ok(CompromisedReply),
)
def compromised(user_id: str) -> Response:
    """Flag the key, log the event, end the account's sessions."""
    require_recent_sign_in()
    key = services.mark_compromised(db.session(), keyring(), user_id, me().id)
    return jsonify({"key": key_json(key)})


@bp.get("/figures")
@endpoint("Aggregate figures with no identities", roles=ADMIN, replies=ok(FiguresReply))
def figures() -> Response:
    """Counts of accounts by role, cases and log entries."""
    return jsonify({"figures": services.figures(db.session())})


class ReauthBody(Body):
    """The authentication subkey derived from the passphrase, as at login (§2.3)."""

    auth_key: b64_exact(32)  # type: ignore[valid-type]


class ProgressReply(Out):
    """Accounts whose identifiers are sealed under the current data key, of all."""

    version: int
    done: int
    total: int


class InviteRow(Out):
    """An open invite as admins see it: no token, no link."""

    id: str
    role: RoleName
    created_by: str | None
    created_at: Timestamp
    expires_at: Timestamp


class InvitesReply(Out):
    """Open invites for counsel and admins."""

    invites: list[InviteRow]


class VerifyReply(Out):
    """The outcome of a full check."""

    intact: bool
    entries: int
    problem: str | None


class LogHeadOut(Out):
    """The newest signed tree head of the key log."""

    size: int
    root: B64
    timestamp_ms: int
    key_version: int


class WitnessOut(Out):
    """A configured witness and the newest log size it cosigned (null: none yet)."""

    name: str
    cosigned_size: int | None
    cosigned_at: int | None


class LogReply(Out):
    """The key log's head and its witnesses."""

    head: LogHeadOut | None
    witnesses: list[WitnessOut]


def _reauth_key() -> str:
    return "reauth:" + str(getattr(current_user, "id", "anonymous"))


def _invite_json(invite: Invite) -> dict[str, object]:
    return {
        "id": invite.id,
        "role": invite.role.value,
        "created_by": invite.created_by,
        "created_at": invite.created_at.isoformat(),
        "expires_at": invite.expires_at.isoformat(),
    }


@bp.post("/reauth")
@limiter.limit(setting_limit("HAVEN_LIMIT_LOGIN_ACCOUNT"), key_func=_reauth_key, deduct_when=failed)
@endpoint(
    "Prove the passphrase again: admin changes need a recent sign-in",
    roles=ADMIN,
    body=ReauthBody,
    replies=NO_CONTENT,
)
def reauth() -> tuple[str, int]:
    """Check the proof and mark this session's sign-in as recent."""
    body = parse_body(ReauthBody)
    services.confirm_passphrase(db.session(), me(), body.auth_key)
    mark_recent_sign_in()
    return "", 204


@bp.get("/keys/reencrypt")
@endpoint(
    "How far identifiers are re-sealed under the current data key",
    roles=ADMIN,
    replies=ok(ProgressReply),
)
def reencrypt_progress() -> Response:
    """Counts only: accounts done and in all."""
    progress = services.reencryption_progress(db.session(), load_keyring(_keys_path()))
    return jsonify(progress.__dict__)


@bp.get("/invites")
@endpoint("Open invites for counsel and admins", roles=ADMIN, replies=ok(InvitesReply))
def invites() -> Response:
    """Invites not yet used or expired (never their tokens)."""
    return jsonify({"invites": [_invite_json(i) for i in services.open_invites(db.session())]})


@bp.post("/invites/<invite_id>/revoke")
@endpoint("Revoke an open invite", roles=ADMIN, replies=NO_CONTENT)
def revoke_invite(invite_id: str) -> tuple[str, int]:
    """The invite expires now."""
    require_recent_sign_in()
    services.revoke_invite(db.session(), invite_id, me().id)
    return "", 204


@bp.get("/log")
@endpoint("The key log's newest head and its witnesses", roles=ADMIN, replies=ok(LogReply))
def log_status() -> Response:
    """Head and, per witness, the newest size it cosigned."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return jsonify(checks.log_status(db.session(), configured(app)))


@bp.post("/log/verify")
@endpoint("Verify the whole key log now", roles=ADMIN, replies=ok(VerifyReply))
def verify_log() -> Response:
    """Recompute every leaf, node and head, as `haven log verify` does."""
    return jsonify(checks.verify_key_log(db.session()).__dict__)


@bp.post("/audit/verify")
@endpoint("Verify the whole audit chain now", roles=ADMIN, replies=ok(VerifyReply))
def verify_audit() -> Response:
    """Walk the chain and its checkpoints, as `haven audit verify` does."""
    return jsonify(checks.verify_audit_chain(db.session()).__dict__)
