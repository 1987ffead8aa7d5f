"""The OpenAPI document is an honest contract: schemathesis calls every operation as each role.

Any 5xx, any answer whose status, content type or JSON body the document does not describe,
fails. Examples are derandomized (a fixed seed) and bounded per operation, so the run is
reproducible. `make test` runs 2 examples per strategy (every operation, every check, every
role); `make contract` and `make bench` run the full 4 (HAVEN_CONTRACT_EXAMPLES). Each role
has its own app and world; an example is generated once and sent as each role in turn.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.authz import World, build_world
from tests.conftest import app_settings, build_app, dispose_app
from tests.factories import session_cookie_for
from tests.services import MinioServer, PostgresServer

# Examples per strategy: 2 in `make test`, the full 4 in `make contract` / `make bench`.
MAX_EXAMPLES = int(os.environ.get("HAVEN_CONTRACT_EXAMPLES", "2"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The event stream stays open for its whole lifetime (minutes); tests/integration/test_events*
# cover it. Sign-out ends every session of the role, so it runs after that role's other calls.
SKIPPED = {("GET", "/api/v1/events")}
LAST = {("POST", "/api/v1/auth/logout")}
# The limiter stays on (readyz checks its storage) with limits no bounded run reaches.
LIMITS = [
    "HAVEN_LIMIT_PRELOGIN",
    "HAVEN_LIMIT_LOGIN_IP",
    "HAVEN_LIMIT_LOGIN_ACCOUNT",
    "HAVEN_LIMIT_RECOVERY",
    "HAVEN_LIMIT_ROTATION_BEGIN",
    "HAVEN_LIMIT_REDEEM",
    "HAVEN_LIMIT_MEMBER_REQUEST",
    "HAVEN_LIMIT_MESSAGE_SEND",
    "HAVEN_LIMIT_CONVERSATION_CREATE",
    "HAVEN_LIMIT_LINK_IP",
    "HAVEN_LIMIT_LINK",
]
ROLES = ["anonymous", "survivor", "counsel", "admin"]
Apps = dict[str, Flask]
Caller = tuple[str, Flask, dict[str, str]]  # role, its app, its session cookie
Tally = dict[str, Counter[str]]  # answers by role and status class


def _cookie(app: Flask, world: World, role: str) -> dict[str, str]:
    """The session cookie that signs a request in as ``role`` (none for anonymous).

    Passed as cookies, not as a Cookie header: werkzeug's test client replaces that header
    with its own (empty) cookie jar.
    """
    if role == "anonymous":
        return {}
    client = app.test_client()
    session_cookie_for(app, client, world.people[role].id)
    with client.session_transaction():
        pass
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = client.get_cookie(name)
    assert cookie is not None
    return {name: cookie.value}


def _known_ids(world: World, role: str) -> dict[str, Any]:
    """Path parameters that name real things, so success answers are generated too."""
    person = world.people.get(role)
    ids: dict[str, Any] = {"case_id": world.case_id, "version": 1, "size": 1}
    if person is not None:
        ids["user_id"] = person.id
    return ids


def _strategies(operation: Any) -> list[tuple[Any, bool]]:
    """Valid and invalid examples, the same for every role."""
    # (strategy, whether it may have nothing to generate: a path of free strings has no
    # invalid value a URL can carry)
    return [
        (operation.as_strategy(GenerationMode.POSITIVE), False),
        (operation.as_strategy(GenerationMode.NEGATIVE), True),
    ]


def _known_strategy(operation: Any, known: dict[str, Any]) -> Any | None:
    """Valid examples at real ids, where the path has only those (None elsewhere)."""
    names = {p.name for p in operation.path_parameters}
    if not names or not names <= known.keys():
        return None
    return operation.as_strategy(
        GenerationMode.POSITIVE, path_parameters={n: known[n] for n in names}
    )


def _exercise(strategy: Any, may_be_empty: bool, callers: list[Caller], tally: Tally) -> None:
    """Run the bounded, derandomized examples of one strategy, each as every given caller."""

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        for role, app, cookies in callers:
            try:
                response = case.call_and_validate(app=app, cookies=cookies, checks=CHECKS)
            except Exception as exc:
                exc.add_note(f"as {role}")
                raise
            tally[role][f"{response.status_code // 100}xx"] += 1

    try:
        run()
    except Unsatisfiable:
        if not may_be_empty:
            raise


@pytest.fixture
def role_apps(postgres: PostgresServer, minio: MinioServer, tmp_path: Path) -> Iterator[Apps]:
    """An app per role as `make_app` builds them, each with a web page and no reachable limit."""
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><html><head></head><body></body></html>")
    (dist / "assets" / "app-0123456789abcdef.js").write_text("export {};\n")
    apps: Apps = {}
    databases: list[str] = []
    try:
        for role in ROLES:
            name = f"t_{secrets.token_hex(6)}"
            postgres.execute(f"CREATE DATABASE {name} TEMPLATE haven_template")
            databases.append(name)
            base = app_settings(
                postgres.url(name), tmp_path / role / "keys", minio, f"t-{secrets.token_hex(6)}"
            )
            app = build_app({**base, **dict.fromkeys(LIMITS, "100000/minute")})
            app.config["HAVEN_WEB_DIST"] = str(dist)
            apps[role] = app
        yield apps
    finally:
        for app in apps.values():
            dispose_app(app)
        for name in databases:
            postgres.drop_database(name)


@pytest.mark.services
def test_every_operation_honours_the_document(role_apps: Apps) -> None:
    """Every operation, as each role: no 5xx, and every answer as documented."""
    # Each role has its own app and world, and sees the same calls in the same order as if
    # it ran alone; an example is generated once and sent as every role (generating costs
    # more than answering), except where the path names that role's own things.
    worlds = {role: build_world(app) for role, app in role_apps.items()}
    callers = [(role, app, _cookie(app, worlds[role], role)) for role, app in role_apps.items()]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", role_apps[ROLES[0]])
    operations = [r.ok() for r in schema.get_all_operations()]
    operations.sort(key=lambda op: (op.method.upper(), op.path) in LAST)
    started, tally, ran = time.monotonic(), {role: Counter[str]() for role in ROLES}, 0
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        for strategy, may_be_empty in _strategies(operation):
            _exercise(strategy, may_be_empty, callers, tally)
            ran += 1
        for caller in callers:
            known = _known_ids(worlds[caller[0]], caller[0])
            strategy = _known_strategy(operation, known)
            if strategy is not None:
                _exercise(strategy, False, [caller], tally)
                ran += 1
    print(
        f"contract ({MAX_EXAMPLES} per strategy): {len(operations)} operations, {ran} runs "
        f"in {time.monotonic() - started:.0f}s; answers by role: "
        + "; ".join(f"{role} {dict(sorted(t.items()))}" for role, t in tally.items())
    )


@pytest.mark.services
def test_document_states_types_media_and_parameters(client: Any, app: Flask) -> None:
    """Integers are integers, uploads are bytes, 204s have no body, parameters are listed."""
    doc = client.get("/api/v1/openapi.json").get_json()
    paths = doc["paths"]
    for path, methods in paths.items():
        for method, op in methods.items():
            successes = [s for s in op["responses"] if s != "default"]
            assert successes, f"{method} {path} declares no successful answer"
            if "204" in op["responses"]:
                assert "content" not in op["responses"]["204"]
    part = paths["/api/v1/documents/{document_id}/parts/{part_number}"]["put"]
    assert list(part["requestBody"]["content"]) == ["application/octet-stream"]
    params = {p["name"]: p for p in part["parameters"]}
    assert params["part_number"]["schema"]["type"] == "integer"
    assert paths["/api/v1/directory/heads/{size}"]["get"]["parameters"][0]["schema"] == {
        "type": "integer",
        "minimum": 0,
    }
    download = paths["/api/v1/documents/{document_id}/content"]["get"]
    assert {"Range"} <= {p["name"] for p in download["parameters"]}
    assert set(download["responses"]["206"]["content"]) == {"application/octet-stream"}
    events = paths["/api/v1/events"]["get"]
    assert "Last-Event-ID" in {p["name"] for p in events["parameters"]}
    assert set(events["responses"]["200"]["content"]) == {"text/event-stream"}
    audit = {p["name"]: p for p in paths["/api/v1/audit/mine"]["get"]["parameters"]}
    assert audit["limit"]["schema"]["maximum"] == 200
    timer = doc["components"]["schemas"]["TimerBody"]["properties"]["seconds"]
    assert timer["enum"] == [0, 3600, 86400, 604800, 2592000]
    cookie = doc["components"]["securitySchemes"]["session"]["name"]
    assert cookie == app.config["SESSION_COOKIE_NAME"]
    assert "text/html" in paths["/app/"]["get"]["responses"]["200"]["content"]
