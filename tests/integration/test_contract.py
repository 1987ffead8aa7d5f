"""The OpenAPI document is an honest contract: schemathesis calls every operation as each role.

Any 5xx, any answer whose status, content type or JSON body the document does not describe,
fails. Examples are derandomized (a fixed seed) and bounded per operation, so the run is
reproducible. `make test` runs 2 examples per strategy (every operation, every check, every
role, each role its own test so workers share them out); `make contract` and `make bench`
run the full 4 (HAVEN_CONTRACT_EXAMPLES).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
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
from tests.factories import session_cookie_for

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


def _strategies(operation: Any, known: dict[str, Any]) -> list[tuple[Any, bool]]:
    """Valid and invalid examples, and valid ones at real ids where the path has only those."""
    # (strategy, whether it may have nothing to generate: a path of free strings has no
    # invalid value a URL can carry)
    found = [
        (operation.as_strategy(GenerationMode.POSITIVE), False),
        (operation.as_strategy(GenerationMode.NEGATIVE), True),
    ]
    names = {p.name for p in operation.path_parameters}
    if names and names <= known.keys():
        ids = {n: known[n] for n in names}
        found.append((operation.as_strategy(GenerationMode.POSITIVE, path_parameters=ids), False))
    return found


def _exercise(
    strategy: Any, may_be_empty: bool, cookies: dict[str, str], counter: list[int]
) -> None:
    """Run the bounded, derandomized examples of one strategy with the given cookies."""

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
        counter[0] += 1
        case.call_and_validate(cookies=cookies, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        if not may_be_empty:
            raise


@pytest.fixture
def contract_app(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    """The app with the rate limiter off, so every example reaches its handler, and a web page."""
    app = make_app(**dict.fromkeys(LIMITS, "100000/minute"))
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><html><head></head><body></body></html>")
    (dist / "assets" / "app-0123456789abcdef.js").write_text("export {};\n")
    app.config["HAVEN_WEB_DIST"] = str(dist)
    return app


@pytest.mark.services
@pytest.mark.parametrize("role", ROLES)
def test_every_operation_honours_the_document(contract_app: Flask, role: str) -> None:
    """Every operation, as each role: no 5xx, and every answer as documented."""
    app = contract_app
    world = build_world(app)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    operations.sort(key=lambda op: (op.method.upper(), op.path) in LAST)
    started, counter, ran = time.monotonic(), [0], 0
    cookies = _cookie(app, world, role)
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        for strategy, may_be_empty in _strategies(operation, _known_ids(world, role)):
            _exercise(strategy, may_be_empty, cookies, counter)
            ran += 1
    print(
        f"contract ({role}, {MAX_EXAMPLES} per strategy): {len(operations)} operations, "
        f"{ran} runs, {counter[0]} examples "
        f"in {time.monotonic() - started:.0f}s"
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
