"""Cross-site requests (docs/protocol.md §5.1): every state-changing route refuses a write
another site's page could send, whichever route it is, and changes nothing.

The routes come from the authorization table (tests/integration/test_authorization.py),
which a test there holds equal to the app's URL map, so a new route is covered here too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask

from tests.authz import ACTORS, Route, World
from tests.factories import session_cookie_for, snapshot
from tests.integration.test_authorization import ROUTES
from vault.accounts.models import User
from vault.config import ConfigError, load_config, origin_of
from vault.db import database
from vault.documents.models import Document, DocumentState
from vault.openapi import endpoint_specs
from vault.security import UNSAFE_METHODS

PUBLIC = "https://haven.example"
JSON = "application/json"
OCTET = "application/octet-stream"


@dataclass(frozen=True)
class Attack:
    """What another site's page (or an old browser on its behalf) sends."""

    name: str
    headers: dict[str, str]
    content_type: str | None  # None: the media type the route declares
    status: int
    code: str


ATTACKS = [
    Attack("foreign Origin", {"Origin": "https://evil.example"}, None, 403, "cross_site_request"),
    Attack("cross-site fetch", {"Sec-Fetch-Site": "cross-site"}, None, 403, "cross_site_request"),
    Attack(
        "sibling subdomain",
        {"Sec-Fetch-Site": "same-site"},
        None,
        403,
        "cross_site_request",
    ),
    Attack("form-style text/plain", {}, "text/plain", 415, "unsupported_media_type"),
]


class _AnyMessage:
    """Equal to any non-empty string (the error's message is prose)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other != ""


ANY_MESSAGE: Any = _AnyMessage()


SAME_ORIGIN = {"Origin": PUBLIC, "Sec-Fetch-Site": "same-origin"}
WRITES = [r for r in ROUTES if r.method in UNSAFE_METHODS]


@pytest.fixture
def acting(app_and_world: Callable[..., tuple[Flask, World]]) -> tuple[Flask, World]:
    """The app behind its public origin on a copy of the world, for writes that may act.

    The test client's Host says something else than the public origin.
    """
    return app_and_world(shared=False, HAVEN_PUBLIC_URL=f"{PUBLIC}/")


@pytest.fixture
def app(acting: tuple[Flask, World]) -> Flask:
    """The acting app."""
    return acting[0]


@pytest.fixture
def world(acting: tuple[Flask, World]) -> World:
    """The authorization tests' accounts, cases and per-feature resources, in the copy."""
    return acting[1]


@pytest.fixture
def refusing(app_and_world: Callable[..., tuple[Flask, World]]) -> tuple[Flask, World]:
    """The app behind its public origin on the world this worker shares.

    For tests that expect every write refused and check the snapshot unchanged: a write
    that did act fails its own test before it can mislead another.
    """
    return app_and_world(shared=True, HAVEN_PUBLIC_URL=f"{PUBLIC}/")


def _actor(route: Route) -> str:
    """The signed-in actor who gets furthest on this route (a success if anyone does)."""

    def rank(actor: str) -> int:
        status = route.expect[actor]
        return 0 if status < 400 else 2 if status in (401, 403, 404) else 1

    return min(ACTORS[1:], key=rank)


def _media_type(app: Flask, route: Route) -> str:
    specs = {(m, r): s for r, m, _, s in endpoint_specs(app)}
    spec = specs[(route.method, route.rule)]
    assert spec is not None
    return spec.media_type


def _send(
    app: Flask, client: Any, world: World, route: Route, headers: dict[str, str], ctype: str
) -> Any:
    """The route's request, with the body it would carry, the given headers and media type."""
    body = b"" if _media_type(app, route) == OCTET else json.dumps(route.body or {}).encode()
    path = route.path(world) if route.path else route.rule
    return client.open(path, method=route.method, data=body, content_type=ctype, headers=headers)


def _signed_in(app: Flask, world: World, actor: str) -> Any:
    client = app.test_client()
    session_cookie_for(app, client, world.people[actor].id)
    return client


CASES = [(route, attack) for route in WRITES for attack in ATTACKS]


@pytest.mark.parametrize(
    ("route", "attack"), CASES, ids=[f"{r.method} {r.rule} {a.name}" for r, a in CASES]
)
def test_every_write_refuses_a_cross_site_request_and_changes_nothing(
    refusing: tuple[Flask, World], route: Route, attack: Attack
) -> None:
    app, world = refusing
    actor = _actor(route)
    client = _signed_in(app, world, actor)
    before = snapshot(app)
    ctype = attack.content_type or _media_type(app, route)
    response = _send(app, client, world, route, attack.headers, ctype)
    assert response.status_code == attack.status, response.get_data(as_text=True)
    assert response.get_json() == {"error": {"code": attack.code, "message": ANY_MESSAGE}}
    assert snapshot(app) == before
    assert client.get("/api/v1/account").status_code == 200  # still signed in


@pytest.mark.parametrize("route", WRITES, ids=[f"{r.method} {r.rule}" for r in WRITES])
def test_every_write_from_the_app_s_own_page_is_answered_as_before(
    app: Flask, world: World, route: Route
) -> None:
    actor = _actor(route)
    client = _signed_in(app, world, actor)
    response = _send(app, client, world, route, SAME_ORIGIN, _media_type(app, route))
    expected = route.expect[actor]
    assert response.status_code == expected, response.get_data(as_text=True)


def test_the_table_holds_every_write_the_app_serves(app: Flask) -> None:
    served = {(m, r) for r, m, _, _ in endpoint_specs(app) if m in UNSAFE_METHODS}
    assert served == {(r.method, r.rule) for r in WRITES}
    assert served  # the matrix above is not empty


# -- the state a cross-site request must not touch, route by route --------------------------


def _user(app: Flask, user_id: str) -> User:
    with app.app_context():
        db = database(app).sessions()
        user = db.get(User, user_id)
        assert user is not None
        db.expunge(user)
        db.close()
    return user


def _document_state(app: Flask, document_id: str) -> DocumentState:
    with app.app_context():
        db = database(app).sessions()
        doc = db.get(Document, document_id)
        assert doc is not None
        state = doc.state
        db.close()
    return state


@dataclass(frozen=True)
class Scenario:
    """A write whose effect is easy to read back: who sends it, and how to read the state."""

    name: str
    actor: str
    method: str
    path: Callable[[World], str]
    body: dict[str, Any] | None
    state: Callable[[Flask, Any, World], object]
    prepare: Callable[[Flask, World], None] | None = None


def _upload_every_part(app: Flask, world: World) -> None:
    from tests.integration.documents_fixtures import make_document

    pending = make_document(app, world.people["survivor"], world.case_id, is_finalized=False)
    client = _signed_in(app, world, "survivor")
    sent = client.put(
        f"/api/v1/documents/{pending.id}/parts/1", data=pending.ciphertext, content_type=OCTET
    )
    assert sent.status_code == 200, sent.get_data(as_text=True)
    world.extra["complete"] = pending.id


SCENARIOS = [
    Scenario(
        "reseal freezes the account",
        "survivor",
        "POST",
        lambda w: "/api/v1/account/keys/reseal",
        None,
        lambda app, _, w: _user(app, w.people["survivor"].id).rotation_freeze_until is not None,
    ),
    Scenario(
        "logout ends the session",
        "counsel",
        "POST",
        lambda w: "/api/v1/auth/logout",
        None,
        lambda app, client, w: (
            _user(app, w.people["counsel"].id).session_version,
            client.get("/api/v1/account").status_code,
        ),
    ),
    Scenario(
        "finalize makes the document visible",
        "survivor",
        "POST",
        lambda w: f"/api/v1/documents/{w.extra['complete']}/finalize",
        None,
        lambda app, _, w: _document_state(app, w.extra["complete"]),
        _upload_every_part,
    ),
    Scenario(
        "an admin disables an account",
        "admin",
        "POST",
        lambda w: f"/api/v1/admin/accounts/{w.people['stranger_survivor'].id}/disabled",
        {"is_disabled": True},
        lambda app, _, w: _user(app, w.people["stranger_survivor"].id).is_disabled,
    ),
]
STATE_CASES = [(s, a) for s in SCENARIOS for a in ATTACKS]


@pytest.mark.parametrize(
    ("scenario", "attack"), STATE_CASES, ids=[f"{s.name}: {a.name}" for s, a in STATE_CASES]
)
def test_a_refused_write_does_not_act_and_the_same_write_from_the_app_does(
    app: Flask, world: World, scenario: Scenario, attack: Attack
) -> None:
    if scenario.prepare is not None:
        scenario.prepare(app, world)
    client = _signed_in(app, world, scenario.actor)
    path = scenario.path(world)
    data = json.dumps(scenario.body or {})
    before = scenario.state(app, client, world)
    refused = client.open(
        path,
        method=scenario.method,
        data=data,
        content_type=attack.content_type or JSON,
        headers=attack.headers,
    )
    assert refused.status_code == attack.status
    assert scenario.state(app, client, world) == before
    done = client.open(
        path, method=scenario.method, data=data, content_type=JSON, headers=SAME_ORIGIN
    )
    assert done.status_code < 300, done.get_data(as_text=True)
    assert scenario.state(app, client, world) != before


# -- the rule's edges -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "null"},  # sandboxed frames, data: pages
        {"Origin": "https://files.haven.example"},  # a sibling subdomain
        {"Origin": "http://haven.example"},  # the same host without TLS
        {"Origin": "https://haven.example:8443"},  # another port
        {"Origin": "https://haven.example.evil.example"},
        {"Origin": "http://localhost"},  # the Host the request was sent to: not the origin
        {"Sec-Fetch-Site": "none"},  # no page sent it (typed, bookmarked): never a write
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"},
        {"Origin": PUBLIC, "Sec-Fetch-Site": "same-site"},
    ],
    ids=str,
)
def test_only_the_public_origin_may_write(
    refusing: tuple[Flask, World], headers: dict[str, str]
) -> None:
    app, world = refusing
    client = _signed_in(app, world, "survivor")
    before = snapshot(app)
    response = client.post("/api/v1/account/keys/reseal", json={}, headers=headers)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "cross_site_request"
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 415),  # a body-less write still names its media type
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        ("application/json; charset=utf-8", 200),
        ("application/octet-stream", 415),  # only the part upload takes raw bytes
    ],
    ids=str,
)
def test_writes_need_their_declared_media_type(
    app_and_world: Callable[..., tuple[Flask, World]], content_type: str | None, status: int
) -> None:
    # Only the accepted write acts; the refused ones run on the world this worker shares.
    app, world = app_and_world(shared=status >= 400, HAVEN_PUBLIC_URL=f"{PUBLIC}/")
    client = _signed_in(app, world, "survivor")
    before = snapshot(app)
    kwargs: dict[str, Any] = {} if content_type is None else {"content_type": content_type}
    response = client.post("/api/v1/account/keys/reseal", **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    if status >= 400:
        assert response.get_json()["error"]["code"] == "unsupported_media_type"
        assert snapshot(app) == before


def test_the_part_upload_takes_only_raw_bytes(refusing: tuple[Flask, World]) -> None:
    app, world = refusing
    client = _signed_in(app, world, "survivor")
    path = f"/api/v1/documents/{world.extra['pending']}/parts/1"
    before = snapshot(app)
    for ctype in (JSON, "text/plain", "multipart/form-data; boundary=x"):
        response = client.put(path, data=b"x", content_type=ctype)
        assert response.status_code == 415
        assert response.get_json()["error"]["code"] == "unsupported_media_type"
    response = client.put(
        path, data=b"x", content_type=OCTET, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert snapshot(app) == before


def test_safe_methods_and_unknown_routes_are_not_checked(refusing: tuple[Flask, World]) -> None:
    app, world = refusing
    client = _signed_in(app, world, "survivor")
    cross = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert client.get("/api/v1/account", headers=cross).status_code == 200
    assert client.post("/api/v1/no-such-route", headers=cross).status_code == 404
    assert client.delete("/api/v1/account", headers=cross).status_code == 405


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://Haven.Example:443/", "https://haven.example"),
        ("http://haven.example:80", "http://haven.example"),
        ("https://haven.example:8443/base", "https://haven.example:8443"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_the_public_origin_is_parsed_once_from_the_public_url(url: str, origin: str) -> None:
    assert origin_of(url) == origin
    assert load_config({"HAVEN_PUBLIC_URL": url})["HAVEN_PUBLIC_ORIGIN"] == origin


@pytest.mark.parametrize(
    "url", ["haven.example", "ftp://haven.example", "https://", "https://u:p@haven.example"]
)
def test_a_malformed_public_url_stops_the_start(url: str) -> None:
    with pytest.raises(ConfigError, match="HAVEN_PUBLIC_URL"):
        load_config({"HAVEN_PUBLIC_URL": url})


def test_the_openapi_document_names_the_raw_part_body(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    part = document["paths"]["/api/v1/documents/{document_id}/parts/{part_number}"]["put"]
    assert list(part["requestBody"]["content"]) == [OCTET]
