"""Passkey routes (protocol §21.8, §21.9): register, list, name, remove, the PRF copy, and
signing in with a passkey as second factor or alone."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, session
from pydantic import Field

from vault import clock, db
from vault.accounts import factors, passkeys
from vault.accounts.factors_views import (
    _pending_owner,
    _require_fresh_sign_in,
    _staff_default,
    finish_sign_in,
    held_sign_in,
)
from vault.accounts.models import Passkey
from vault.accounts.views import (
    LOGIN_REPLY_BYTES,
    WRAPPED,
    AccountOut,
    LoginReply,
    account_json,
    padded,
)
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
    parse_body,
)
from vault.errors import Unauthorized
from vault.extensions import failed, limiter, setting_limit
from vault.keyring import keyring
from vault.protocol.encoding import b64decode, b64encode
from vault.sessions import start_session

bp = Blueprint("passkeys", __name__, url_prefix="/api/v1")

CHALLENGE_SECONDS = 300


class NewPasskeyBody(Body):
    """A new credential (the browser's PublicKeyCredential as JSON) and its name."""

    credential: dict[str, Any]
    name: str = Field(min_length=1, max_length=64)


class NameBody(Body):
    """A passkey's new name."""

    name: str = Field(min_length=1, max_length=64)


class UnlockBody(Body):
    """The key bundle wrapped under the passkey's PRF-derived key (§21.9)."""

    wrapped_keys: b64_exact(WRAPPED)  # type: ignore[valid-type]


class AssertionBody(Body):
    """An assertion (the browser's PublicKeyCredential as JSON)."""

    credential: dict[str, Any]


class OptionsReply(Out):
    """WebAuthn options for navigator.credentials (JSON encoding of the `webauthn` package)."""

    public_key: dict[str, Any]


class PasskeyOut(Out):
    """A registered passkey."""

    id: str
    name: str
    can_unlock: bool
    created_at: Timestamp
    last_used_at: Timestamp | None


class PasskeyReply(Out):
    """One passkey."""

    passkey: PasskeyOut


class PasskeysReply(Out):
    """The account's passkeys."""

    passkeys: list[PasskeyOut]


class UnlockReply(Out):
    """A passkey sign-in: the account and the PRF-wrapped bundle, padded like a login."""

    account: AccountOut
    prf_wrapped_keys: B64
    pad: str


def _rp() -> passkeys.RelyingParty:
    origin = current_app.config["HAVEN_PUBLIC_ORIGIN"]
    rp_id = current_app.config["HAVEN_WEBAUTHN_RP_ID"] or urlsplit(origin).hostname or ""
    return passkeys.RelyingParty(rp_id, origin)


def _options(purpose: str, options: tuple[str, bytes]) -> Response:
    """Keep the challenge in the signed session for one answer; send the options."""
    text, challenge = options
    session["webauthn"] = [purpose, b64encode(challenge), int(clock.time())]
    return jsonify({"public_key": json.loads(text)})


def _challenge(purpose: str) -> bytes:
    """The challenge issued for ``purpose``, used once: a second answer finds none."""
    held = session.pop("webauthn", None)
    if not isinstance(held, list) or len(held) != 3 or held[0] != purpose:
        raise Unauthorized("ask for a new passkey challenge first", code="no_challenge")
    if not 0 <= clock.time() - held[2] <= CHALLENGE_SECONDS:
        raise Unauthorized("the passkey challenge expired; try again", code="no_challenge")
    return b64decode(held[1])


def passkey_json(passkey: Passkey) -> dict[str, Any]:
    """A passkey as JSON (no key material)."""
    return {
        "id": passkey.id,
        "name": passkey.name,
        "can_unlock": passkey.prf_wrapped_keys is not None,
        "created_at": passkey.created_at.isoformat(),
        "last_used_at": passkey.last_used_at.isoformat() if passkey.last_used_at else None,
    }


@bp.get("/account/passkeys")
@endpoint("My passkeys", roles=ANY_ROLE, replies=ok(PasskeysReply))
def my_passkeys() -> Response:
    """Names, dates and whether each can unlock the account alone."""
    found = passkeys.list_passkeys(db.session(), me().id)
    return jsonify({"passkeys": [passkey_json(p) for p in found]})


@bp.post("/account/passkeys/options")
@endpoint(
    "Creation options for a new passkey (needs a fresh sign-in)",
    roles=ANY_ROLE,
    replies=ok(OptionsReply),
)
def passkey_options() -> Response:
    """Options for navigator.credentials.create; the challenge is kept in the session."""
    _require_fresh_sign_in()
    found = factors.begin_passkey(db.session(), keyring(), me().id, _rp())
    return _options("register", found)


@bp.post("/account/passkeys")
@endpoint(
    "Register a passkey answered to the last creation options",
    roles=ANY_ROLE,
    body=NewPasskeyBody,
    replies=ok(PasskeyReply, 201),
)
def add_passkey() -> tuple[Response, int]:
    """Verify and keep the credential."""
    _require_fresh_sign_in()
    body = parse_body(NewPasskeyBody)
    challenge = _challenge("register")
    found = passkeys.add_passkey(
        db.session(), me().id, _rp(), challenge, body.credential, body.name
    )
    return jsonify({"passkey": passkey_json(found)}), 201


@bp.post("/account/passkeys/<passkey_id>/name")
@endpoint("Rename a passkey", roles=ANY_ROLE, body=NameBody, replies=ok(PasskeyReply))
def rename_passkey(passkey_id: str) -> Response:
    """Store the new name."""
    body = parse_body(NameBody)
    found = passkeys.rename(db.session(), me().id, passkey_id, body.name)
    return jsonify({"passkey": passkey_json(found)})


@bp.post("/account/passkeys/<passkey_id>/unlock")
@endpoint(
    "Keep the key bundle wrapped under this passkey's PRF-derived key (needs a fresh sign-in)",
    roles=ANY_ROLE,
    body=UnlockBody,
    replies=ok(PasskeyReply),
)
def set_unlock(passkey_id: str) -> Response:
    """From now on the passkey alone opens the account."""
    _require_fresh_sign_in()
    body = parse_body(UnlockBody)
    found = passkeys.set_unlock(db.session(), me().id, passkey_id, body.wrapped_keys)
    return jsonify({"passkey": passkey_json(found)})


@bp.post("/account/passkeys/<passkey_id>/remove")
@endpoint(
    "Remove a passkey and its way in (needs a fresh sign-in)", roles=ANY_ROLE, replies=NO_CONTENT
)
def remove_passkey(passkey_id: str) -> tuple[str, int]:
    """Delete it; refused for the last factor of a role that must keep one."""
    _require_fresh_sign_in()
    factors.remove_passkey(db.session(), me().id, passkey_id, _staff_default())
    return "", 204


@bp.post("/auth/factor/passkey/options")
@endpoint(
    "Request options to complete a pending sign-in with a passkey",
    roles=ANONYMOUS,
    replies=ok(OptionsReply),
)
def factor_options() -> Response:
    """Options naming the passkeys of the account whose factor is checked."""
    allowed = passkeys.list_passkeys(db.session(), held_sign_in()[2])
    return _options("factor", passkeys.authentication_options(_rp(), allowed))


@bp.post("/auth/factor/passkey")
@limiter.limit(setting_limit("HAVEN_LIMIT_FACTOR"), key_func=_pending_owner, deduct_when=failed)
@endpoint(
    "Complete a pending sign-in with a passkey",
    roles=ANONYMOUS,
    body=AssertionBody,
    replies=ok(LoginReply),
)
def factor_passkey() -> Response:
    """Check the assertion, then start the held session."""
    user_id, version, _ = held_sign_in()
    body = parse_body(AssertionBody)
    factors.passkey_sign_in(db.session(), _rp(), _challenge("factor"), user_id, body.credential)
    return finish_sign_in(user_id, version)


@bp.post("/auth/passkey/options")
@limiter.limit(setting_limit("HAVEN_LIMIT_LOGIN_IP"))
@endpoint(
    "Request options to sign in with a passkey alone (any discoverable passkey)",
    roles=ANONYMOUS,
    replies=ok(OptionsReply),
)
def unlock_options() -> Response:
    """Options with no credential list: the authenticator offers its passkeys for this site."""
    return _options("unlock", passkeys.authentication_options(_rp(), None))


@bp.post("/auth/passkey")
@limiter.limit(setting_limit("HAVEN_LIMIT_LOGIN_IP"))
@endpoint(
    "Sign in with a PRF passkey alone: the account and its PRF-wrapped key bundle",
    roles=ANONYMOUS,
    body=AssertionBody,
    replies=ok(UnlockReply),
)
def unlock() -> Response:
    """Check the assertion; start a session; send the copy only the passkey's PRF opens."""
    body = parse_body(AssertionBody)
    challenge = _challenge("unlock")
    user, passkey = factors.unlock_with_passkey(db.session(), _rp(), challenge, body.credential)
    assert passkey.prf_wrapped_keys is not None
    start_session(user)
    reply = {"account": account_json(user), "prf_wrapped_keys": b64encode(passkey.prf_wrapped_keys)}
    return padded(reply, LOGIN_REPLY_BYTES + 256)
