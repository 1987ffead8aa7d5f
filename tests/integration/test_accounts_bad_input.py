"""Bad input to the account routes: a 4xx in the one error shape, and nothing changes."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.factories import make_person, row_counts, session_cookie_for
from vault.accounts.models import Role
from vault.db import database
from vault.protocol import keys as pkeys
from vault.protocol.encoding import b64encode

B = b64encode


def valid_registration(invite: str) -> dict[str, Any]:
    """A well-formed registration body (random subkeys, real signed public keys)."""
    keys = pkeys.KeyPairs.generate()
    pub = keys.public("newperson")
    wrap = pkeys.wrap_bundle(keys, "newperson", os.urandom(32))
    return {
        "invite": invite,
        "username": "newperson",
        "passphrase": {
            "kdf": {
                "alg": "argon2id13",
                "salt": B(os.urandom(16)),
                "opslimit": 3,
                "memlimit": 64 << 20,
            },
            "auth_key": B(os.urandom(32)),
            "wrapped_keys": B(wrap),
        },
        "recovery_auth_key": B(os.urandom(32)),
        "recovery_wrapped_keys": B(wrap),
        "public_keys": {
            "version": 1,
            "x25519": B(pub.x25519),
            "ed25519": B(pub.ed25519),
            "signature": B(pub.signature),
        },
    }


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    parts = path.split(".")
    target = body
    for part in parts[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return body


_DELETE = object()

REGISTRATION_MUTATIONS: list[tuple[str, str, Any, str]] = [
    ("bad base64", "recovery_auth_key", "not*base64", "invalid_field"),
    ("padded base64", "passphrase.auth_key", B(os.urandom(32)) + "=", "invalid_field"),
    ("short key", "passphrase.auth_key", B(os.urandom(31)), "invalid_field"),
    ("long key", "public_keys.x25519", B(os.urandom(33)), "invalid_field"),
    ("wrong bundle length", "passphrase.wrapped_keys", B(os.urandom(105)), "invalid_field"),
    ("weak opslimit", "passphrase.kdf.opslimit", 2, "weak_kdf_parameters"),
    ("weak memlimit", "passphrase.kdf.memlimit", 32 << 20, "weak_kdf_parameters"),
    ("other kdf", "passphrase.kdf.alg", "scrypt", "weak_kdf_parameters"),
    ("unknown field", "extra", "x", "invalid_field"),
    ("missing field", "public_keys", _DELETE, "invalid_field"),
    ("number as string", "public_keys.version", "1", "invalid_field"),
    ("bad username", "username", "no spaces allowed", "invalid_request"),
    ("oversize username", "username", "x" * 65, "invalid_field"),
    ("bad signature", "public_keys.signature", B(os.urandom(64)), "invalid_request"),
    ("key version 2", "public_keys.version", 2, "invalid_request"),
    ("unknown invite", "invite", B(os.urandom(32)), "invite_invalid"),
]


@pytest.mark.parametrize(
    ("name", "path", "value", "code"),
    REGISTRATION_MUTATIONS,
    ids=[m[0] for m in REGISTRATION_MUTATIONS],
)
def test_bad_registration_is_refused_and_changes_nothing(
    app: Flask, invite: Callable[..., str], name: str, path: str, value: Any, code: str
) -> None:
    body = _set(valid_registration(invite("counsel")), path, value)
    before = row_counts(app)
    response = app.test_client().post("/api/v1/auth/register", json=body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] == code
    assert row_counts(app) == before


def test_valid_registration_body_is_accepted(app: Flask, invite: Callable[..., str]) -> None:
    """The mutations above start from a body the server accepts."""
    before = row_counts(app)
    response = app.test_client().post(
        "/api/v1/auth/register", json=valid_registration(invite("counsel"))
    )
    assert response.status_code == 201
    assert row_counts(app)["users"] == before["users"] + 1


def test_expired_invite_is_refused(app: Flask, make_app: Callable[..., Flask]) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from vault.accounts import services
    from vault.accounts.models import Invite

    with app.app_context():
        db = database(app).sessions()
        invite, token = services.create_invite(db, Role.COUNSEL, None, 1)
        db.execute(update(Invite).values(expires_at=invite.expires_at - timedelta(hours=2)))
        db.commit()
        db.close()
    before = row_counts(app)
    response = app.test_client().post("/api/v1/auth/register", json=valid_registration(B(token)))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invite_invalid"
    assert row_counts(app) == before


def test_taken_username_is_refused(app: Flask, invite: Callable[..., str]) -> None:
    client = app.test_client()
    assert (
        client.post("/api/v1/auth/register", json=valid_registration(invite())).status_code == 201
    )
    body = valid_registration(invite())
    before = row_counts(app)
    second = client.post("/api/v1/auth/register", json=body)
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "username_taken"
    assert row_counts(app) == before


@pytest.mark.parametrize(
    ("route", "raw", "content_type", "status", "code"),
    [
        ("/api/v1/auth/login", b"{not json", "application/json", 400, "malformed_json"),
        ("/api/v1/auth/login", b'{"username": "a"}', "text/plain", 415, "unsupported_media_type"),
        ("/api/v1/auth/login", b"[]", "application/json", 400, "invalid_field"),
        ("/api/v1/auth/prelogin", b'{"username": 5}', "application/json", 400, "invalid_field"),
        (
            "/api/v1/auth/recovery/start",
            b'{"username": "a", "recovery_auth_key": "@@"}',
            "application/json",
            400,
            "invalid_field",
        ),
        ("/api/v1/auth/register", b"null", "application/json", 400, "malformed_json"),
    ],
)
def test_malformed_bodies_are_refused(
    app: Flask, route: str, raw: bytes, content_type: str, status: int, code: str
) -> None:
    before = row_counts(app)
    response = app.test_client().post(route, data=raw, content_type=content_type)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert row_counts(app) == before


def test_oversize_body_is_refused(app: Flask) -> None:
    before = row_counts(app)
    big = b'{"username": "' + b"a" * (300 * 1024) + b'"}'
    response = app.test_client().post(
        "/api/v1/auth/prelogin", data=big, content_type="application/json"
    )
    assert response.status_code == 413
    assert set(response.get_json()["error"]) == {"code", "message"}
    assert row_counts(app) == before


def test_weak_new_passphrase_parameters_change_nothing(app: Flask) -> None:
    with app.app_context():
        db = database(app).sessions()
        person = make_person(db, app.extensions["haven.keyring"], Role.COUNSEL, "weakling")
        db.close()
    client = app.test_client()
    session_cookie_for(app, client, person.id)
    body = {
        "current_auth_key": B(os.urandom(32)),
        "passphrase": {
            "kdf": {
                "alg": "argon2id13",
                "salt": B(os.urandom(16)),
                "opslimit": 1,
                "memlimit": 64 << 20,
            },
            "auth_key": B(os.urandom(32)),
            "wrapped_keys": B(os.urandom(106)),
        },
    }
    before = row_counts(app)
    response = client.post("/api/v1/account/passphrase", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "weak_kdf_parameters"
    assert row_counts(app) == before
    assert client.get("/api/v1/account").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/v1/auth/login"), ("DELETE", "/api/v1/account")]
)
def test_wrong_method_gets_the_error_shape(app: Flask, method: str, path: str) -> None:
    response = app.test_client().open(path, method=method)
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
