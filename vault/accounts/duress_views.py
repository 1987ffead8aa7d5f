"""Duress passphrase routes (protocol §18): set, read, toggle the alert, remove."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from flask_login import current_user

from vault import db
from vault.accounts import duress
from vault.accounts.limits import server_hash_cost
from vault.accounts.models import DuressLink, Role
from vault.accounts.views import WRAPPED, PublicKeysBody
from vault.api import (
    ANY_ROLE,
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
from vault.extensions import failed, limiter, setting_limit
from vault.keyring import keyring
from vault.protocol import keys as pkeys

bp = Blueprint("duress", __name__, url_prefix="/api/v1")

SURVIVOR = {Role.SURVIVOR}


class SetDuressBody(Body):
    """Prove the passphrase; the duress subkey, the decoy's wrapped keys and public keys."""

    current_auth_key: b64_exact(32)  # type: ignore[valid-type]
    auth_key: b64_exact(32)  # type: ignore[valid-type]
    wrapped_keys: b64_exact(WRAPPED)  # type: ignore[valid-type]
    public_keys: PublicKeysBody
    alert_counsel: bool


class AlertBody(Body):
    """Whether a duress sign-in alerts counsel."""

    alert_counsel: bool


class RemoveDuressBody(Body):
    """Prove the passphrase to turn the duress passphrase off."""

    current_auth_key: b64_exact(32)  # type: ignore[valid-type]


class DuressOut(Out):
    """A duress setting."""

    alert_counsel: bool
    created_at: Timestamp


class DuressReply(Out):
    """The account's duress setting, or null when none is set."""

    duress: DuressOut | None


def duress_json(link: DuressLink | None) -> dict[str, Any]:
    """The duress setting as JSON."""
    if link is None:
        return {"duress": None}
    return {
        "duress": {"alert_counsel": link.is_alerting, "created_at": link.created_at.isoformat()}
    }


def _per_account() -> str:
    return f"duress:{current_user.get_id()}"


@bp.get("/account/duress")
@endpoint("The duress passphrase setting (null when none)", roles=ANY_ROLE, replies=ok(DuressReply))
def get_duress() -> Response:
    """Say whether a duress passphrase is set and whether it alerts counsel."""
    return jsonify(duress_json(duress.settings(db.session(), me().id)))


@bp.post("/account/duress")
@limiter.limit(setting_limit("HAVEN_LIMIT_RECOVERY"), key_func=_per_account, deduct_when=failed)
@endpoint(
    "Set a duress passphrase: create the hidden decoy account it opens",
    roles=SURVIVOR,
    body=SetDuressBody,
    replies=ok(DuressReply, 201),
)
def set_duress() -> tuple[Response, int]:
    """Create the decoy and link it; the caller's session goes on."""
    body = parse_body(SetDuressBody)
    pk = body.public_keys
    link = duress.set_duress(
        db.session(),
        keyring(),
        server_hash_cost(),
        me().id,
        duress.NewDuress(
            current_auth_key=body.current_auth_key,
            auth_key=body.auth_key,
            wrapped_keys=body.wrapped_keys,
            public_keys=pkeys.PublicKeys(pk.version, pk.x25519, pk.ed25519, pk.signature),
            is_alerting=body.alert_counsel,
        ),
    )
    return jsonify(duress_json(link)), 201


@bp.post("/account/duress/alert")
@endpoint(
    "Turn the duress sign-in alert to counsel on or off",
    roles=SURVIVOR,
    body=AlertBody,
    replies=ok(DuressReply),
)
def set_alert() -> Response:
    """Store the alert setting."""
    body = parse_body(AlertBody)
    return jsonify(duress_json(duress.set_alerting(db.session(), me().id, body.alert_counsel)))


@bp.post("/account/duress/remove")
@limiter.limit(setting_limit("HAVEN_LIMIT_RECOVERY"), key_func=_per_account, deduct_when=failed)
@endpoint(
    "Remove the duress passphrase (the decoy and its content are deleted)",
    roles=SURVIVOR,
    body=RemoveDuressBody,
    replies=NO_CONTENT,
)
def remove_duress() -> tuple[str, int]:
    """Delete the link and the decoy after the passphrase is proved."""
    body = parse_body(RemoveDuressBody)
    duress.remove_duress(db.session(), me().id, body.current_auth_key)
    return "", 204
