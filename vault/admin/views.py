"""Admin routes: key rotation, account states, aggregate figures. No content, ever."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from flask import Blueprint, Response, current_app, jsonify

from vault import db
from vault.accounts.models import Role
from vault.accounts.views import KeyOut, RoleName, key_json
from vault.admin import services
from vault.api import NO_CONTENT, Body, Out, Timestamp, endpoint, me, ok, parse_body
from vault.keyring import keyring

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

ADMIN = {Role.ADMIN}
Purpose = Literal["session", "data", "logsign"]


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
    rows = services.key_status(db.session(), keyring())
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
    body = parse_body(PurposeBody)
    version = services.rotate(db.session(), _keys_path(), body.purpose, me().id)
    return jsonify({"purpose": body.purpose, "version": version}), 201


@bp.post("/keys/reencrypt")
@endpoint(
    "Re-seal one batch of identifiers under the current data key",
    roles=ADMIN,
    replies=ok(ReencryptReply),
)
def reencrypt() -> Response:
    """Run one batch; call again until it reports zero."""
    from vault.keyring import load_keyring

    done = services.reencrypt_data(db.session(), load_keyring(_keys_path()))
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
    body = parse_body(RetireBody)
    lifetime = current_app.config["HAVEN_SESSION_MAX_SECONDS"]
    services.retire(db.session(), _keys_path(), body.purpose, body.version, lifetime, me().id)
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
    key = services.mark_compromised(db.session(), keyring(), user_id, me().id)
    return jsonify({"key": key_json(key)})


@bp.get("/figures")
@endpoint("Aggregate figures with no identities", roles=ADMIN, replies=ok(FiguresReply))
def figures() -> Response:
    """Counts of accounts by role, cases and log entries."""
    return jsonify({"figures": services.figures(db.session())})
