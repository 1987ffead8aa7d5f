"""Second-factor routes (protocol §21): complete a pending sign-in, set up and remove TOTP,
and the admins' policy."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from pydantic import Field

from vault import db
from vault.accounts import factors
from vault.accounts.models import Role, User
from vault.accounts.views import (
    LOGIN_REPLY_BYTES,
    LoginReply,
    account_json,
    padded,
)
from vault.api import (
    ANONYMOUS,
    ANY_ROLE,
    NO_CONTENT,
    Body,
    Out,
    Timestamp,
    endpoint,
    me,
    ok,
    parse_body,
)
from vault.errors import InvalidRequest, Unauthorized
from vault.extensions import failed, limiter, setting_limit
from vault.keyring import keyring
from vault.sessions import (
    pending_sign_in,
    require_recent_sign_in,
    start_session,
)

bp = Blueprint("factors", __name__, url_prefix="/api/v1")

TOTP_CODE = r"^[0-9]{6}$"


class FactorBody(Body):
    """One second factor: a TOTP code or a one-time recovery code."""

    code: str | None = Field(None, pattern=TOTP_CODE)
    recovery_code: str | None = Field(None, min_length=16, max_length=32)


class CodeBody(Body):
    """A TOTP code."""

    code: str = Field(pattern=TOTP_CODE)


class PolicyBody(Body):
    """Whether counsel and admins must have a second factor."""

    required_for_staff: bool


class TotpOut(Out):
    """TOTP is on."""

    enrolled_at: Timestamp


class FactorsReply(Out):
    """The factors guarding the signed-in account."""

    totp: TotpOut | None
    recovery_codes_left: int
    required: bool


class EnrolmentReply(Out):
    """A new TOTP secret, shown once: base32 and the otpauth URI (for a QR code)."""

    secret: str
    uri: str
    digits: int
    period: int
    algorithm: str


class RecoveryCodesReply(Out):
    """One-time recovery codes, shown once."""

    recovery_codes: list[str]


class PolicyReply(Out):
    """The second-factor policy."""

    required_for_staff: bool


def _staff_default() -> bool:
    return bool(current_app.config["HAVEN_FACTOR_REQUIRE_STAFF"])


def _pending_owner() -> str:
    """Rate-limit key: the account whose factor a pending sign-in must show."""
    held = pending_sign_in()
    return f"factor:{held[2] if held else 'none'}"


def _signed_in_owner() -> str:
    return f"factor:{me().id}"


def _require_fresh_sign_in() -> None:
    """A full sign-in (not an admin's passphrase proof) within HAVEN_FACTOR_RECENT_SECONDS."""
    require_recent_sign_in(
        "HAVEN_FACTOR_RECENT_SECONDS",
        full_sign_in_only=True,
        message="sign in again to change your second factors",
    )


@bp.post("/auth/factor")
@limiter.limit(setting_limit("HAVEN_LIMIT_FACTOR"), key_func=_pending_owner, deduct_when=failed)
@endpoint(
    "Complete a pending sign-in with a TOTP code or a recovery code (§21.1)",
    roles=ANONYMOUS,
    body=FactorBody,
    replies=ok(LoginReply),
)
def complete_sign_in() -> Response:
    """Check the factor, then start the session the passphrase proof was holding."""
    user_id, version, _ = held_sign_in()
    body = parse_body(FactorBody)
    if (body.code is None) == (body.recovery_code is None):
        raise InvalidRequest("send either code or recovery_code", code="invalid_field")
    factors.verify_sign_in(db.session(), keyring(), user_id, body.code, body.recovery_code)
    return finish_sign_in(user_id, version)


def held_sign_in() -> tuple[str, int, str]:
    """The pending sign-in of this client, or 401 ``no_pending_sign_in``."""
    held = pending_sign_in()
    if held is None:
        raise Unauthorized("no sign-in is waiting for a second factor", code="no_pending_sign_in")
    return held


def finish_sign_in(user_id: str, version: int) -> Response:
    """Start the held session once its factor checked; answer as a login does (§21.1)."""
    user = db.session().get(User, user_id)
    if user is None or user.is_disabled or user.session_version != version:
        raise Unauthorized("this sign-in has ended; sign in again", code="no_pending_sign_in")
    start_session(user)
    return padded({"account": account_json(user)}, LOGIN_REPLY_BYTES)


@bp.get("/account/factors")
@endpoint("The second factors guarding my account", roles=ANY_ROLE, replies=ok(FactorsReply))
def my_factors() -> Response:
    """TOTP on or off, recovery codes left, and whether my role must keep a factor."""
    found = factors.state(db.session(), me(), _staff_default())
    return jsonify(
        {
            "totp": {"enrolled_at": found.totp_since.isoformat()} if found.totp_since else None,
            "recovery_codes_left": found.recovery_codes_left,
            "required": found.is_required,
        }
    )


@bp.post("/account/factors/totp")
@endpoint(
    "Start setting up TOTP: a new secret, shown once (needs a fresh sign-in)",
    roles=ANY_ROLE,
    replies=ok(EnrolmentReply),
)
def begin_totp() -> Response:
    """Draw and seal a secret; it works once a code from it is confirmed."""
    _require_fresh_sign_in()
    found = factors.begin_totp(
        db.session(), keyring(), me().id, current_app.config["HAVEN_TOTP_ISSUER"]
    )
    return jsonify(
        {
            "secret": found.secret,
            "uri": found.uri,
            "digits": factors.TOTP_DIGITS,
            "period": factors.TOTP_PERIOD,
            "algorithm": "SHA1",
        }
    )


@bp.post("/account/factors/totp/confirm")
@limiter.limit(setting_limit("HAVEN_LIMIT_FACTOR"), key_func=_signed_in_owner, deduct_when=failed)
@endpoint(
    "Turn TOTP on with a code from the new secret; get one-time recovery codes",
    roles=ANY_ROLE,
    body=CodeBody,
    replies=ok(RecoveryCodesReply),
)
def confirm_totp() -> Response:
    """Check the code and return the recovery codes, shown this once."""
    _require_fresh_sign_in()
    body = parse_body(CodeBody)
    codes = factors.confirm_totp(db.session(), keyring(), me().id, body.code)
    return jsonify({"recovery_codes": codes})


@bp.post("/account/factors/totp/remove")
@endpoint(
    "Turn TOTP off (needs a fresh sign-in; refused where the role must keep a factor)",
    roles=ANY_ROLE,
    replies=NO_CONTENT,
)
def remove_totp() -> tuple[str, int]:
    """Delete the secret and the recovery codes."""
    _require_fresh_sign_in()
    factors.remove_totp(db.session(), me().id, _staff_default())
    return "", 204


@bp.get("/admin/factor-policy")
@endpoint("The second-factor policy", roles={Role.ADMIN}, replies=ok(PolicyReply))
def policy() -> Response:
    """Whether counsel and admins must have a second factor."""
    return jsonify(
        {"required_for_staff": factors.is_required_for_staff(db.session(), _staff_default())}
    )


@bp.post("/admin/factor-policy")
@endpoint(
    "Require (or stop requiring) a second factor of counsel and admins",
    roles={Role.ADMIN},
    body=PolicyBody,
    replies=ok(PolicyReply),
)
def set_policy() -> Response:
    """Store the policy; it applies from each account's next sign-in."""
    require_recent_sign_in()
    body = parse_body(PolicyBody)
    found = factors.set_policy(db.session(), me().id, body.required_for_staff)
    return jsonify({"required_for_staff": found})
