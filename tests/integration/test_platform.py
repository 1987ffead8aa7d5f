"""Platform behaviour: headers, cookies, sessions, probes, OpenAPI, limiter storage, SQLite."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests
from flask import Flask

from tests.conftest import PASSPHRASE, LiveServer
from tests.factories import make_person, session_cookie_for
from tests.services import MinioServer, RedisServer
from vault.accounts.models import Role
from vault.client import ApiError, HavenClient
from vault.db import database
from vault.protocol.encoding import b64encode

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@pytest.mark.parametrize(
    "path", ["/healthz", "/api/v1/account", "/api/v1/nope", "/api/v1/openapi.json"]
)
def test_every_response_carries_the_security_headers(client: object, path: str) -> None:
    response = client.get(path)  # type: ignore[attr-defined]
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp


def _person(app: Flask, role: Role = Role.COUNSEL, name: str = "pat") -> str:
    with app.app_context():
        db = database(app).sessions()
        person = make_person(db, app.extensions["haven.keyring"], role, name)
        db.close()
    return person.id


def test_secure_session_cookie_under_tls(
    make_app: Callable[..., Flask], invite: Callable[..., str]
) -> None:
    app = make_app(HAVEN_SECURE_COOKIES="true")
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-haven"
    from tests.integration.test_accounts_bad_input import valid_registration

    client = app.test_client()
    response = client.post(
        "/api/v1/auth/register", json=valid_registration(invite()), base_url="https://haven.example"
    )
    assert response.status_code == 201
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-haven=")
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in cookie
    assert "Domain=" not in cookie
    assert "remember_token" not in str(response.headers)
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_idle_session_expires_but_activity_keeps_it(app: Flask) -> None:
    from datetime import timedelta

    person = _person(app)
    client = app.test_client()
    session_cookie_for(app, client, person)
    app.permanent_session_lifetime = timedelta(seconds=3)
    for _ in range(4):  # activity every second slides the idle window past its length
        assert client.get("/api/v1/account").status_code == 200
        time.sleep(1)
    time.sleep(4.5)
    assert client.get("/api/v1/account").status_code == 401


def test_absolute_lifetime_ends_a_busy_session(app: Flask) -> None:
    person = _person(app)
    client = app.test_client()
    session_cookie_for(app, client, person)
    assert client.get("/api/v1/account").status_code == 200
    with client.session_transaction() as sess:
        sess["iat"] = int(time.time()) - app.config["HAVEN_SESSION_MAX_SECONDS"] - 1
    assert client.get("/api/v1/account").status_code == 401


def test_disabled_account_loses_its_session(app: Flask) -> None:
    from sqlalchemy import update

    from vault.accounts.models import User

    person = _person(app)
    client = app.test_client()
    session_cookie_for(app, client, person)
    assert client.get("/api/v1/account").status_code == 200
    with app.app_context():
        db = database(app).sessions()
        db.execute(update(User).where(User.id == person).values(is_disabled=True))
        db.commit()
        db.close()
    assert client.get("/api/v1/account").status_code == 401


def test_readyz_names_a_dead_object_store(app: Flask, minio: MinioServer) -> None:
    client = app.test_client()
    assert client.get("/readyz").get_json()["checks"] == {
        "database": "ok",
        "object_store": "ok",
        "limiter": "ok",
    }
    minio.stop()
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"]["object_store"] == "unavailable"
        assert response.get_json()["error"]["code"] == "not_ready"
        assert client.get("/healthz").status_code == 200
    finally:
        minio.start()
    assert client.get("/readyz").status_code == 200


def test_readyz_names_a_dead_database(make_app: Callable[..., Flask]) -> None:
    app = make_app(HAVEN_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "unavailable"


def test_readyz_does_not_wait_for_a_limiter_that_is_switched_off(
    make_app: Callable[..., Flask],
) -> None:
    # Its store is unreachable, but a limiter that is off never uses it.
    app = make_app(HAVEN_RATELIMIT_ENABLED="false", HAVEN_LIMITER_STORAGE_URI="redis://127.0.0.1:1")
    response = app.test_client().get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "status": "ok",
        "checks": {"limiter": "off", "database": "ok", "object_store": "ok"},
    }


def test_database_down_gives_503_in_the_error_shape(make_app: Callable[..., Flask]) -> None:
    app = make_app(HAVEN_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none")
    response = app.test_client().post("/api/v1/auth/prelogin", json={"username": "someone"})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"


def test_openapi_documents_every_api_route(client: object) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()  # type: ignore[attr-defined]
    assert doc["openapi"].startswith("3.1")
    login = doc["paths"]["/api/v1/auth/login"]["post"]
    assert login["security"] == []
    schema = doc["components"]["schemas"]["LoginBody"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"username", "auth_key"}
    assert doc["paths"]["/api/v1/cases/{case_id}"]["get"]["parameters"][0]["name"] == "case_id"


def test_limits_are_shared_through_redis(
    make_app: Callable[..., Flask], redis_server: RedisServer, invite: Callable[..., str]
) -> None:
    """Two app instances on one Redis count the same login failures."""
    settings = {
        "HAVEN_LIMITER_STORAGE_URI": redis_server.url,
        "HAVEN_LIMIT_LOGIN_ACCOUNT": "3/minute",
    }
    first, second = make_app(**settings), make_app(**settings)
    with first.app_context():
        assert first.extensions["limiter"] is not None
    bad = {"username": f"redis-{time.time_ns()}", "auth_key": b64encode(b"\x02" * 32)}
    statuses = [
        first.test_client().post("/api/v1/auth/login", json=bad).status_code for _ in range(2)
    ]
    statuses.append(second.test_client().post("/api/v1/auth/login", json=bad).status_code)
    statuses.append(second.test_client().post("/api/v1/auth/login", json=bad).status_code)
    assert statuses == [401, 401, 401, 429]
    assert second.test_client().get("/readyz").get_json()["checks"]["limiter"] == "ok"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_accounts_work_on_the_embedded_sqlite_default(
    app: Flask, create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    assert app.config["HAVEN_DATABASE_URL"].startswith("sqlite")
    first, recovery = create_account("counsel", username="sqlite-user")
    survivor, _ = create_account("survivor", invited_by=first)
    assert len(survivor.cases()) == 1

    def device() -> HavenClient:
        return HavenClient(live_server.url, witnesses=live_server.witnesses)

    assert device().login("sqlite-user", PASSPHRASE).keys == first.account.keys  # type: ignore[union-attr]
    device().recover("sqlite-user", recovery, "another long passphrase")
    with pytest.raises(ApiError):
        device().login("sqlite-user", PASSPHRASE)


def test_plain_http_server_speaks_json_errors(live_server: LiveServer) -> None:
    response = requests.get(f"{live_server.url}/api/v1/cases", timeout=10)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "unauthorized"
