"""Every route the app serves and every error code it sends is in docs/protocol.md."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from vault import create_app
from vault.db import database
from vault.openapi import endpoint_specs

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "protocol.md"
API_PREFIX = "/api/v1"
# The web client's files are not part of the protocol; the page itself is (§4.4).
ASSETS = {"/assets/<name>"}
# A spec path segment in braces stands for one URL variable: `{case}`, `{id}`, `{c}`.
PATH_CHAR = r"[A-Za-z0-9_./{}-]"


@pytest.fixture
def app(tmp_path: Path, sqlite_template: Path) -> Iterator[Flask]:
    """The app with its default routes, on a throwaway SQLite copy (no other service)."""
    db_path = tmp_path / "haven.db"
    shutil.copy(sqlite_template, db_path)
    app = create_app(
        {
            "HAVEN_TESTING": "true",
            "HAVEN_DATABASE_URL": f"sqlite:///{db_path}",
            "HAVEN_KEYS_DIR": str(tmp_path / "keys"),
            "HAVEN_SECURE_COOKIES": "false",
            "HAVEN_MESSAGE_PURGE_SECONDS": "0",
        }
    )
    yield app
    purger = app.extensions.get("haven.purger")
    if purger is not None:
        purger.stop()
    database(app).engine.dispose()


def spec_pattern(method: str, rule: str) -> re.Pattern[str]:
    """How the spec writes a route: `METHOD /path`, API paths with or without /api/v1,
    URL variables as {name}."""
    is_api = rule.startswith(API_PREFIX + "/")
    path = rule.removeprefix(API_PREFIX) if is_api else rule
    parts = re.split(r"<[^>]+>", path)
    body = r"\{[^}/\s]+\}".join(re.escape(p) for p in parts)
    prefix = f"(?:{re.escape(API_PREFIX)})?" if is_api else ""
    return re.compile(rf"(?<![A-Z]){method} {prefix}{body}(?!{PATH_CHAR})")


def served_routes(app: Flask) -> list[tuple[str, str]]:
    """(method, rule) of every route that the spec must describe."""
    return sorted(
        (method, rule) for rule, method, _, _ in endpoint_specs(app) if rule not in ASSETS
    )


def test_the_app_serves_routes_to_check(app: Flask) -> None:
    routes = served_routes(app)
    assert ("POST", "/api/v1/auth/register") in routes
    assert ("GET", "/api/v1/cases/<case_id>") in routes
    assert ("GET", "/healthz") in routes


def test_every_route_is_in_the_spec(app: Flask) -> None:
    text = SPEC.read_text(encoding="utf-8")
    missing = [
        f"{method} {rule}"
        for method, rule in served_routes(app)
        if not spec_pattern(method, rule).search(text)
    ]
    assert not missing, "routes missing from docs/protocol.md:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    ("method", "rule", "text", "found"),
    [
        ("GET", "/api/v1/cases", "| `GET /cases` |", True),
        ("GET", "/api/v1/cases", "`GET /cases/{case}/documents`", False),
        ("GET", "/api/v1/cases/<case_id>", "`GET /cases/{case}` answers", True),
        ("POST", "/api/v1/cases/<case_id>", "`GET /cases/{case}`", False),
        ("GET", "/api/v1/x/<int:n>", "`GET /x/{n}?a=1`", True),
        ("GET", "/", "`GET /` serves", True),
        ("GET", "/", "`GET /app/`", False),
        ("GET", "/api/v1/openapi.json", "`GET /api/v1/openapi.json`", True),
        ("GET", "/api/v1/openapi.json", "`GET /openapi.json`", True),
        ("GET", "/healthz", "`GET /api/v1/healthz`", False),
    ],
)
def test_spec_pattern(method: str, rule: str, text: str, found: bool) -> None:
    assert bool(spec_pattern(method, rule).search(text)) is found


# Codes the server sets: `code="…"` in a raise, a class default `code = "…"`, the JSON
# written by hand in /readyz; the Python client only reads them.
CODE_RE = re.compile(r'\bcode\s*=\s*"([a-z_]+)"|"code":\s*"([a-z_]+)"')
# Written by werkzeug or the error handlers from the HTTP status, not by a literal.
HTTP_CODES = {"not_found", "method_not_allowed", "request_entity_too_large"}
HANDLER_CODES = {"rate_limited", "database_unavailable", "internal_error"}


def server_codes() -> set[str]:
    """Every error code a literal in vault/ (the client excepted) sets."""
    found: set[str] = set()
    for path in (ROOT / "vault").rglob("*.py"):
        if "client" in path.relative_to(ROOT / "vault").parts:
            continue
        for match in CODE_RE.finditer(path.read_text(encoding="utf-8")):
            found.add(match.group(1) or match.group(2))
    return found


def error_table() -> str:
    """The text of §10.2."""
    text = SPEC.read_text(encoding="utf-8")
    start = text.index("### 10.2 Error codes")
    return text[start : text.index("\n## ", start)]


def test_every_error_code_is_in_the_error_table() -> None:
    codes = server_codes()
    assert {"invalid_size", "not_ready", "invalid_request", "message_too_large"} <= codes
    table = error_table()
    missing = sorted(c for c in codes | HTTP_CODES | HANDLER_CODES if f"| `{c}` |" not in table)
    assert not missing, "error codes missing from §10.2 of docs/protocol.md: " + ", ".join(missing)
