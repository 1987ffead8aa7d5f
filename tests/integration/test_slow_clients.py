"""Slow clients (issue 12, finding 1): half-sent requests cannot starve the production server.

The production gunicorn (vault/gunicorn_conf.py: 2 workers x 4 threads here) gets far more
half-sent requests than it has threads: bodies that declare a length and stop, and headers
that never end. /healthz and a signed-in user must still answer, and every slow connection
must be closed by the server (bodies with a 408), however long the client waits.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import PASSPHRASE
from tests.integration import test_production
from tests.integration.test_production import Gunicorn, _admin_invite, proxied_client

production = test_production.production  # the production gunicorn fixture, reused

SLOW = 12  # of each kind; the server has 8 threads
GENEROUS = 120.0  # seconds: "answers at all", not a timing assertion


@pytest.fixture
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deadlines of a few seconds, read by the worker from its environment."""
    monkeypatch.setenv("HAVEN_HEADER_TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("HAVEN_BODY_TIMEOUT_SECONDS", "3")


def _open(url: str, data: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=GENEROUS)
    sock.sendall(data)
    return sock


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    sock.close()
    return received


@pytest.fixture
def slow_connections(
    short_deadlines: None, production: tuple[Gunicorn, dict[str, str], str]
) -> Iterator[tuple[list[socket.socket], list[socket.socket]]]:
    """Half-sent bodies and half-sent headers, opened before anything else is asked."""
    server = production[0]
    bodies = [
        _open(
            server.url,
            b"POST /api/v1/auth/prelogin HTTP/1.1\r\nHost: haven.example\r\n"
            b"Content-Type: application/json\r\nContent-Length: 133\r\n\r\n"
            b'{"username": "slow',
        )
        for _ in range(SLOW)
    ]
    headers = [
        _open(server.url, b"GET /healthz HTTP/1.1\r\nHost: haven.example\r\nX-Slow: ")
        for _ in range(SLOW)
    ]
    yield bodies, headers
    for sock in bodies + headers:
        sock.close()


def test_half_sent_requests_do_not_starve_the_server(
    slow_connections: tuple[list[socket.socket], list[socket.socket]],
    production: tuple[Gunicorn, dict[str, str], str],
) -> None:
    server, settings, _ = production
    bodies, headers = slow_connections
    assert requests.get(f"{server.url}/healthz", timeout=GENEROUS).status_code == 200
    counsel = proxied_client(server.url)
    counsel.register(_admin_invite(settings), "slow-counsel", PASSPHRASE)
    account = counsel.http.get(f"{server.url}/api/v1/account", timeout=GENEROUS)
    assert account.status_code == 200
    assert account.json()["account"]["username"] == "slow-counsel"
    # The server closed every slow connection: a body got its 408, a header nothing.
    for sock in bodies:
        answer = _until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b'"request_timeout"' in answer
    for sock in headers:
        assert b"200 OK" not in _until_closed(sock)
