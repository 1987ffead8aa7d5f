"""Account routes: invites, registration, login, recovery, passphrase, profile."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from flask import Blueprint, Response, current_app, jsonify, request
from flask_login import current_user
from pydantic import Field

from vault import db
from vault.accounts import factors, rotation, services
from vault.accounts.limits import account_key, server_hash_cost
from vault.accounts.models import Role, User, UserKey
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
from vault.contacts.views import ContactBookBody
from vault.errors import InvalidRequest
from vault.extensions import failed, limiter, setting_limit
from vault.keyring import keyring
from vault.protocol import documents as pdoc
from vault.protocol import keys as pkeys
from vault.protocol import messages as pmsg
from vault.protocol.encoding import b64encode
from vault.protocol.kdf import KdfParams
from vault.sessions import end_session, start_pending, start_session

bp = Blueprint("accounts", __name__, url_prefix="/api/v1")

WRAPPED = pkeys.WRAPPED_BUNDLE_BYTES


class KdfBody(Body):
    """Argon2id parameters chosen by the client."""

    alg: str = Field(max_length=16)
    salt: b64_exact(16)  # type: ignore[valid-type]
    opslimit: int
    memlimit: int


class PublicKeysBody(Body):
    """A self-signed public key record."""

    version: int
    x25519: b64_exact(32)  # type: ignore[valid-type]
    ed25519: b64_exact(32)  # type: ignore[valid-type]
    signature: b64_exact(64)  # type: ignore[valid-type]


class PassphraseBody(Body):
    """A new passphrase's KDF parameters, auth subkey and wrapped private keys."""

    kdf: KdfBody
    auth_key: b64_exact(32)  # type: ignore[valid-type]
    wrapped_keys: b64_exact(WRAPPED)  # type: ignore[valid-type]


class RegisterBody(Body):
    """Redeem an invite and create an account."""

    invite: b64_exact(32)  # type: ignore[valid-type]
    username: str = Field(max_length=64)
    passphrase: PassphraseBody
    recovery_auth_key: b64_exact(32)  # type: ignore[valid-type]
    recovery_wrapped_keys: b64_exact(WRAPPED)  # type: ignore[valid-type]
    public_keys: PublicKeysBody


class UsernameBody(Body):
    """A username alone."""

    username: str = Field(max_length=64)


class LoginBody(Body):
    """Username and authentication subkey."""

    username: str = Field(max_length=64)
    auth_key: b64_exact(32)  # type: ignore[valid-type]


class RecoveryStartBody(Body):
    """Prove the recovery key to fetch the recovery-wrapped private keys."""

    username: str = Field(max_length=64)
    recovery_auth_key: b64_exact(32)  # type: ignore[valid-type]


class RecoveryCompleteBody(Body):
    """Prove the recovery key and set a new passphrase."""

    username: str = Field(max_length=64)
    recovery_auth_key: b64_exact(32)  # type: ignore[valid-type]
    passphrase: PassphraseBody


class ChangePassphraseBody(Body):
    """Prove the current passphrase and set a new one."""

    current_auth_key: b64_exact(32)  # type: ignore[valid-type]
    passphrase: PassphraseBody


class ResealedDocumentBody(Body):
    """A document's file key re-sealed to the new key version."""

    id: str = Field(min_length=1, max_length=64)
    sealed_key: b64_exact(pdoc.SEALED_KEY_BYTES)  # type: ignore[valid-type]


class ResealedMessageBody(Body):
    """A message key re-sealed to the new key version."""

    id: str = Field(min_length=1, max_length=64)
    sealed_key: b64_exact(pmsg.SEALED_KEY_BYTES)  # type: ignore[valid-type]


class RotateKeysBody(Body):
    """New key pairs, their wrapped bundles, and every readable key re-sealed (§14)."""

    current_auth_key: b64_exact(32)  # type: ignore[valid-type]
    public_keys: PublicKeysBody
    passphrase: PassphraseBody
    recovery_auth_key: b64_exact(32)  # type: ignore[valid-type]
    recovery_wrapped_keys: b64_exact(WRAPPED)  # type: ignore[valid-type]
    documents: list[ResealedDocumentBody] = Field(max_length=1_000_000)
    messages: list[ResealedMessageBody] = Field(max_length=1_000_000)
    contact_book: ContactBookBody | None = None


class InviteBody(Body):
    """The role the invited person will have."""

    role: Literal["survivor", "counsel", "admin"]


def _new_passphrase(body: PassphraseBody) -> services.NewPassphrase:
    kdf = KdfParams(body.kdf.salt, body.kdf.opslimit, body.kdf.memlimit, body.kdf.alg)
    return services.NewPassphrase(kdf, body.auth_key, body.wrapped_keys)


RoleName = Literal["survivor", "counsel", "admin"]


class KeyOut(Out):
    """A published key version."""

    user_id: str
    version: int = Field(ge=1)
    x25519: B64
    ed25519: B64
    signature: B64
    status: Literal["current", "superseded", "compromised"]
    log_index: int | None
    logged_at_ms: int | None


class AccountOut(Out):
    """The signed-in account with its wrapped private keys."""

    id: str
    role: RoleName
    username: str
    key_version: int
    wrapped_keys: B64
    public_keys: KeyOut
    must_rotate_keys: bool
    must_enrol_factor: bool


class AccountReply(Out):
    """An answer carrying the account."""

    account: AccountOut


class FactorChallengeOut(Out):
    """The second factors that may complete a pending sign-in (protocol §21.1)."""

    methods: list[Literal["totp", "recovery_code", "passkey"]]


class LoginReply(Out):
    """The account, or a second-factor challenge, padded so every successful sign-in answer
    has the same length."""

    account: AccountOut | None = None
    factor: FactorChallengeOut | None = None
    pad: str


# Every successful login answer is this many bytes (protocol §18.4): an account whose
# fields run long (a 32-character username, large log indexes) still fits.
LOGIN_REPLY_BYTES = 1024


class KdfOut(Out):
    """Argon2id parameters for a username."""

    alg: str
    salt: B64
    opslimit: int
    memlimit: int


class PreloginReply(Out):
    """The KDF parameters to derive the authentication subkey with."""

    kdf: KdfOut


class RecoveryStartReply(Out):
    """The private keys wrapped under the recovery key."""

    key_version: int
    recovery_wrapped_keys: B64


class ResealDocument(Out):
    """A document key sealed to the old key version."""

    id: str
    sealed_key: B64


class ResealMessage(Out):
    """A message key sealed to an old key version."""

    id: str
    conversation_id: str
    key_version: int
    sealed_key: B64


class ResealReply(Out):
    """Every key the rotation must re-seal."""

    key_version: int
    documents: list[ResealDocument]
    messages: list[ResealMessage]


class InviteOut(Out):
    """A new invite; its token and link are shown once."""

    id: str
    role: RoleName
    expires_at: Timestamp
    token: B64
    link: str


class InviteReply(Out):
    """The invite just created."""

    invite: InviteOut


def key_json(key: UserKey) -> dict[str, Any]:
    """A published key version as JSON."""
    return {
        "user_id": key.user_id,
        "version": key.version,
        "x25519": b64encode(key.x25519),
        "ed25519": b64encode(key.ed25519),
        "signature": b64encode(key.signature),
        "status": key.status.value,
        "log_index": key.log_index,
        "logged_at_ms": key.logged_at_ms,
    }


def account_json(user: User) -> dict[str, Any]:
    """The signed-in account as JSON, with its wrapped private keys."""
    return {
        "id": user.id,
        "role": user.role.value,
        "username": services.display_name(keyring(), user),
        "key_version": user.key_version,
        "wrapped_keys": b64encode(user.wrapped_keys),
        "public_keys": key_json(services.current_keys(user)),
        "must_rotate_keys": services.current_keys(user).status.value == "compromised",
        "must_enrol_factor": factors.must_enrol(
            db.session(), user, current_app.config["HAVEN_FACTOR_REQUIRE_STAFF"]
        ),
    }


@bp.post("/auth/prelogin")
@limiter.limit(setting_limit("HAVEN_LIMIT_PRELOGIN"))
@limiter.limit(setting_limit("HAVEN_LIMIT_PRELOGIN"), key_func=account_key)
@endpoint(
    "Argon2id salt and parameters for a username (decoys for unknown names)",
    roles=ANONYMOUS,
    body=UsernameBody,
    replies=ok(PreloginReply),
)
def prelogin() -> Response:
    """Answer every username with the same shape, known or not."""
    body = parse_body(UsernameBody)
    params = services.prelogin(db.session(), keyring(), body.username)
    return jsonify(
        {
            "kdf": {
                "alg": params.alg,
                "salt": b64encode(params.salt),
                "opslimit": params.opslimit,
                "memlimit": params.memlimit,
            }
        }
    )


@bp.post("/auth/register")
@limiter.limit(setting_limit("HAVEN_LIMIT_REDEEM"))
@endpoint(
    "Redeem an invite and create an account",
    roles=ANONYMOUS,
    body=RegisterBody,
    replies=ok(AccountReply, 201, "account created; session started"),
)
def register() -> tuple[Response, int]:
    """Create the account and sign it in."""
    body = parse_body(RegisterBody)
    pk = body.public_keys
    reg = services.Registration(
        invite_token=body.invite,
        username=body.username,
        passphrase=_new_passphrase(body.passphrase),
        recovery_auth_key=body.recovery_auth_key,
        recovery_wrapped_keys=body.recovery_wrapped_keys,
        public_keys=pkeys.PublicKeys(pk.version, pk.x25519, pk.ed25519, pk.signature),
    )
    user = services.register(db.session(), keyring(), server_hash_cost(), reg)
    start_session(user)
    return jsonify({"account": account_json(user)}), 201


def padded(data: dict[str, Any], size: int) -> Response:
    """A JSON answer padded with a ``pad`` string to exactly ``size`` bytes (protocol §18.4)."""
    data = {**data, "pad": ""}
    length = len(jsonify(data).get_data())
    data["pad"] = "A" * max(size - length, 0)
    return jsonify(data)


@bp.post("/auth/login")
@limiter.limit(setting_limit("HAVEN_LIMIT_LOGIN_IP"))
@limiter.limit(setting_limit("HAVEN_LIMIT_LOGIN_ACCOUNT"), key_func=account_key, deduct_when=failed)
@endpoint(
    "Sign in with the authentication subkey (the passphrase or the duress passphrase); "
    "an account with a second factor gets a challenge instead (§21.1)",
    roles=ANONYMOUS,
    body=LoginBody,
    replies=ok(LoginReply),
)
def login() -> Response:
    """Start a session and return the wrapped private keys, or hold it for the second factor."""
    body = parse_body(LoginBody)
    user = services.authenticate(
        db.session(), keyring(), server_hash_cost(), body.username, body.auth_key
    )
    owner_id = factors.factor_owner(db.session(), user.id)
    if factors.has_factor(db.session(), owner_id):
        start_pending(user, owner_id)
        methods = factors.methods(db.session(), owner_id)
        return padded({"factor": {"methods": methods}}, LOGIN_REPLY_BYTES)
    start_session(user)
    return padded({"account": account_json(user)}, LOGIN_REPLY_BYTES)


@bp.post("/auth/logout")
@endpoint("End every session of this account", roles=ANY_ROLE, replies=NO_CONTENT)
def logout() -> tuple[str, int]:
    """Bump the session version, then drop this client's cookie."""
    services.end_sessions(db.session(), me().id)
    end_session()
    return "", 204


@bp.post("/auth/recovery/start")
@limiter.limit(setting_limit("HAVEN_LIMIT_RECOVERY"))
@limiter.limit(setting_limit("HAVEN_LIMIT_RECOVERY"), key_func=account_key)
@endpoint(
    "Prove the recovery key; get the recovery-wrapped private keys",
    roles=ANONYMOUS,
    body=RecoveryStartBody,
    replies=ok(RecoveryStartReply),
)
def recovery_start() -> Response:
    """Return the copy of the private keys wrapped under the recovery key."""
    body = parse_body(RecoveryStartBody)
    user = services.authenticate_recovery(
        db.session(), keyring(), server_hash_cost(), body.username, body.recovery_auth_key
    )
    return jsonify(
        {
            "key_version": user.key_version,
            "recovery_wrapped_keys": b64encode(user.recovery_wrapped_keys),
        }
    )


class RecoveryReply(Out):
    """The account, or for an account with a second factor the challenge (§21.1)."""

    account: AccountOut | None = None
    factor: FactorChallengeOut | None = None


@bp.post("/auth/recovery/complete")
@limiter.limit(setting_limit("HAVEN_LIMIT_RECOVERY"))
@limiter.limit(setting_limit("HAVEN_LIMIT_RECOVERY"), key_func=account_key)
@endpoint(
    "Prove the recovery key and set a new passphrase; an account with a second factor "
    "then completes the sign-in with it (§21.1)",
    roles=ANONYMOUS,
    body=RecoveryCompleteBody,
    replies=ok(RecoveryReply),
)
def recovery_complete() -> Response:
    """Set the new passphrase, end all sessions, and sign this client in (or hold it)."""
    body = parse_body(RecoveryCompleteBody)
    user = services.recover(
        db.session(),
        keyring(),
        server_hash_cost(),
        body.username,
        body.recovery_auth_key,
        _new_passphrase(body.passphrase),
    )
    # The recovery key replaces the passphrase, not the second factor.
    if factors.has_factor(db.session(), user.id):
        start_pending(user, user.id)
        return jsonify({"factor": {"methods": factors.methods(db.session(), user.id)}})
    start_session(user)
    return jsonify({"account": account_json(user)})


@bp.post("/account/passphrase")
@limiter.limit(
    setting_limit("HAVEN_LIMIT_RECOVERY"),
    key_func=lambda: f"pass:{current_user.get_id()}",
    deduct_when=failed,
)
@endpoint(
    "Change the passphrase (re-wraps the private keys)",
    roles=ANY_ROLE,
    body=ChangePassphraseBody,
    replies=NO_CONTENT,
)
def change_passphrase() -> tuple[str, int]:
    """Re-wrap under a new passphrase; every session ends, this one included."""
    body = parse_body(ChangePassphraseBody)
    services.change_passphrase(
        db.session(),
        server_hash_cost(),
        me().id,
        body.current_auth_key,
        _new_passphrase(body.passphrase),
    )
    end_session()
    return "", 204


@bp.get("/account")
@endpoint("The signed-in account", roles=ANY_ROLE, replies=ok(AccountReply))
def account() -> Response:
    """Return the signed-in account."""
    return jsonify({"account": account_json(me())})


@bp.post("/account/keys/reseal")
@limiter.limit(
    setting_limit("HAVEN_LIMIT_ROTATION_BEGIN"), key_func=lambda: f"begin:{current_user.get_id()}"
)
@endpoint(
    "Start a key rotation: freeze the account and list every key it must re-seal",
    roles=ANY_ROLE,
    replies=ok(ResealReply),
)
def reseal_set() -> Response:
    """Nothing new is sealed to the account for a while; here is what to re-seal (§14)."""
    freeze = timedelta(seconds=current_app.config["HAVEN_ROTATION_FREEZE_SECONDS"])
    found = rotation.begin(db.session(), me().id, freeze)
    return jsonify(
        {
            "key_version": found.key_version,
            "documents": [
                {"id": doc_id, "sealed_key": b64encode(sealed)}
                for doc_id, sealed in sorted(found.documents.items())
            ],
            "messages": [
                {
                    "id": m.id,
                    "conversation_id": m.conversation_id,
                    "key_version": m.key_version,
                    "sealed_key": b64encode(m.sealed_key),
                }
                for m in found.messages
            ],
        }
    )


def _unique(items: list[Any], what: str) -> dict[str, bytes]:
    out = {item.id: item.sealed_key for item in items}
    if len(out) != len(items):
        raise InvalidRequest(f"each {what} is listed once", code="invalid_field")
    return out


@bp.post("/account/keys")
@limiter.limit(
    setting_limit("HAVEN_LIMIT_RECOVERY"),
    key_func=lambda: f"rotate:{current_user.get_id()}",
    deduct_when=failed,
)
@endpoint(
    "Rotate this account's keys: publish a new version with every readable key re-sealed",
    roles=ANY_ROLE,
    body=RotateKeysBody,
    replies=ok(AccountReply),
)
def rotate_keys() -> Response:
    """Replace the key pairs; every other session ends and this one starts afresh."""
    request.max_content_length = current_app.config["HAVEN_ROTATION_MAX_BYTES"]
    body = parse_body(RotateKeysBody)
    pk = body.public_keys
    user = rotation.rotate(
        db.session(),
        keyring(),
        server_hash_cost(),
        me().id,
        rotation.Rotation(
            current_auth_key=body.current_auth_key,
            public_keys=pkeys.PublicKeys(pk.version, pk.x25519, pk.ed25519, pk.signature),
            passphrase=_new_passphrase(body.passphrase),
            recovery_auth_key=body.recovery_auth_key,
            recovery_wrapped_keys=body.recovery_wrapped_keys,
            documents=_unique(body.documents, "document"),
            messages=_unique(body.messages, "message"),
            contact_book=None
            if body.contact_book is None
            else (body.contact_book.counter, body.contact_book.book),
        ),
    )
    start_session(user)
    return jsonify({"account": account_json(user)})


@bp.post("/invites")
@endpoint(
    "Create an invite: admins invite counsel or admins, counsel invite survivors",
    roles={Role.ADMIN, Role.COUNSEL},
    body=InviteBody,
    replies=ok(InviteReply, 201),
)
def create_invite() -> tuple[Response, int]:
    """Create a one-time invite and return its link once."""
    body = parse_body(InviteBody)
    invite, token = services.create_invite(
        db.session(), Role(body.role), me(), current_app.config["HAVEN_INVITE_HOURS"]
    )
    return jsonify(
        {
            "invite": {
                "id": invite.id,
                "role": invite.role.value,
                "expires_at": invite.expires_at.isoformat(),
                "token": b64encode(token),
                "link": invite_link(token),
            }
        }
    ), 201


def invite_link(token: bytes) -> str:
    """The link a person opens to register; the token sits in the fragment, never sent."""
    return f"{current_app.config['HAVEN_PUBLIC_URL']}/app/#invite={b64encode(token)}"
