"""Hostile input from issue 12: odd digits, huge integers, deep JSON, anonymous floods."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.factories import make_person, row_counts, session_cookie_for
from vault.accounts.models import Role, User
from vault.api import MAX_INT, MAX_JSON_DEPTH
from vault.cases import services as cases
from vault.db import database

DEEP = "[" * 1000 + "]" * 1000  # 2 KB, 1,000 levels: RecursionError and a 500 before


@pytest.fixture
def survivor(app: Flask) -> tuple[Any, str]:
    """A signed-in survivor's test client and the id of their case."""
    with app.app_context():
        db = database(app).sessions()
        ring = app.extensions["haven.keyring"]
        counsel = make_person(db, ring, Role.COUNSEL, "counsel.h")
        person = make_person(db, ring, Role.SURVIVOR, "survivor.h", invited_by=counsel.id)
        user = db.get(User, person.id)
        assert user is not None
        case_id = cases.list_cases(db, user)[0].id
        db.close()
    client = app.test_client()
    session_cookie_for(app, client, person.id)
    return client, case_id


def _error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert set(error) == {"code", "message"}
    assert error["code"] == code, error


@pytest.mark.parametrize("value", ["²", "١", "１", "1²", "-1", "+1", " 1", "1.0", "", "0x1"])
@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/v1/audit/mine?limit={}", "invalid_request"),
        ("/api/v1/directory/proofs/inclusion?index={}&size=1", "invalid_request"),
        ("/api/v1/directory/proofs/consistency?from=1&to={}", "invalid_request"),
        ("/api/v1/cases/{case}/events?limit={}", "invalid_field"),
    ],
)
def test_integer_queries_take_ascii_digits_only(
    app: Flask, survivor: tuple[Any, str], path: str, code: str, value: str
) -> None:
    client, case_id = survivor
    before = row_counts(app)
    _error(client.get(path.format(value, case=case_id)), 400, code)
    assert row_counts(app) == before


def test_message_page_queries_take_ascii_digits_only(survivor: tuple[Any, str]) -> None:
    client, _ = survivor
    for name in ("before", "after", "limit"):
        answer = client.get(f"/api/v1/conversations/nosuch/messages?{name}=²")
        _error(answer, 400, "invalid_field")


@pytest.mark.parametrize(
    "size", ["9223372036854775808", "9223372036854775807", str(MAX_INT + 1), "1" * 100]
)
def test_head_of_a_huge_size_is_a_400(survivor: tuple[Any, str], size: str) -> None:
    client, _ = survivor
    _error(client.get(f"/api/v1/directory/heads/{size}"), 400, "invalid_request")


def test_head_of_a_size_in_other_digits_is_not_a_route(survivor: tuple[Any, str]) -> None:
    client, _ = survivor
    _error(client.get("/api/v1/directory/heads/%D9%A1"), 404, "not_found")
    assert client.get("/api/v1/directory/heads/1").status_code in (200, 404)


def test_a_key_version_in_other_digits_is_not_a_route(
    app: Flask, survivor: tuple[Any, str]
) -> None:
    client, _ = survivor
    me = client.get("/api/v1/account").get_json()["account"]["id"]
    assert client.get(f"/api/v1/users/{me}/keys/1").status_code == 200
    _error(client.get(f"/api/v1/users/{me}/keys/%D9%A1"), 404, "not_found")
    _error(client.get(f"/api/v1/users/{me}/keys/{2**64}"), 400, "invalid_request")


def test_deep_json_is_refused_on_an_anonymous_route(app: Flask) -> None:
    client = app.test_client()
    before = row_counts(app)
    for route in ("/api/v1/auth/prelogin", "/api/v1/auth/login", "/api/v1/auth/register"):
        answer = client.post(route, data=DEEP, content_type="application/json")
        _error(answer, 400, "json_too_complex")
    assert row_counts(app) == before


def test_deep_json_is_refused_on_a_signed_in_route(app: Flask, survivor: tuple[Any, str]) -> None:
    client, case_id = survivor
    before = row_counts(app)
    deep_object = '{"a":' * 1000 + "1" + "}" * 1000
    for body in (DEEP, deep_object):
        answer = client.post(
            f"/api/v1/cases/{case_id}/documents", data=body, content_type="application/json"
        )
        _error(answer, 400, "json_too_complex")
    assert row_counts(app) == before


@pytest.mark.parametrize("members", [["a\u0000b"], ["\u0000"]], ids=["inside", "alone"])
def test_text_with_nul_is_a_400_not_a_database_error(
    app: Flask, survivor: tuple[Any, str], members: list[str]
) -> None:
    """PostgreSQL text cannot hold U+0000: the contract test found a 500 here."""
    client, case_id = survivor
    before = row_counts(app)
    url = f"/api/v1/cases/{case_id}/conversations"
    _error(client.post(url, json={"members": members}), 400, "invalid_field")
    _error(client.post(url, json={"members": ["x"], "\u0000": 1}), 400, "invalid_field")
    assert row_counts(app) == before


def test_json_depth_bound_is_exact(app: Flask) -> None:
    client = app.test_client()
    at_bound = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    over = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    # Brackets inside strings are text, not nesting.
    quoted = json.dumps({"username": "[" * 20 + '\\"{' * 10})
    send: Callable[[str], Any] = lambda body: client.post(  # noqa: E731
        "/api/v1/auth/prelogin", data=body, content_type="application/json"
    )
    _error(send(at_bound), 400, "invalid_field")  # parsed, then refused by the schema
    _error(send(over), 400, "json_too_complex")
    answer = send(quoted)
    assert answer.status_code in (200, 400)
    assert answer.status_code == 200 or answer.get_json()["error"]["code"] != "json_too_complex"


@pytest.mark.parametrize(
    ("number", "code"),
    [
        (str(2**64), "invalid_field"),
        ("9" * 5000, "invalid_field"),
        (str(-(2**63)), "invalid_field"),
        ("NaN", "malformed_json"),
        ("Infinity", "malformed_json"),
        ('"3"', "invalid_field"),  # strict: a string of digits is not an integer
        ('"٣"', "invalid_field"),
        ("3.0", "invalid_field"),
    ],
)
def test_body_integers_are_bounded_and_strict(
    app: Flask, survivor: tuple[Any, str], number: str, code: str
) -> None:
    client, _ = survivor
    before = row_counts(app)
    body = '{"current_auth_key": "' + "A" * 43 + '", "passphrase": {"kdf": {"alg": "argon2id13",'
    body += '"salt": "' + "A" * 22 + f'", "opslimit": {number}, "memlimit": 67108864}}, '
    body += '"auth_key": "' + "A" * 43 + '", "wrapped_keys": "' + "A" * 142 + '"}}'
    answer = client.post("/api/v1/account/passphrase", data=body, content_type="application/json")
    _error(answer, 400, code)
    assert row_counts(app) == before


def test_anonymous_callers_get_401_after_the_shared_bucket_fills(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(HAVEN_LIMIT_RECOVERY="2/minute")
    anonymous = app.test_client()
    # Before: every anonymous caller shared the key "pass:None"; the third got 429.
    for _ in range(6):
        answer = anonymous.post("/api/v1/account/passphrase", json={})
        _error(answer, 401, "unauthorized")
        answer = anonymous.post("/api/v1/account/keys/reseal", content_type="application/json")
        _error(answer, 401, "unauthorized")
    # The limit still holds for a signed-in account.
    with app.app_context():
        db = database(app).sessions()
        person = make_person(db, app.extensions["haven.keyring"], Role.COUNSEL, "counsel.r")
        db.close()
    signed_in = app.test_client()
    session_cookie_for(app, signed_in, person.id)
    codes = [signed_in.post("/api/v1/account/passphrase", json={}).status_code for _ in range(3)]
    assert codes == [400, 400, 429]
