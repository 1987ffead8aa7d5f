"""Slow clients (issue 12, finding 1): half-sent requests cannot starve the production server.

The production gunicorn (vault/gunicorn_conf.py: 2 workers x 4 threads here) gets far more
half-sent requests than it has threads: bodies that declare a length and stop, and headers
that never end. /healthz and a signed-in user must still answer, and every slow connection
must be closed by the server (bodies with a 408), however long the client waits.

One address may have only a few bodies being read at once per worker
(HAVEN_MAX_PENDING_BODIES_PER_CLIENT): its excess half-sent bodies are answered 429 at once,
while other clients, /healthz and the address's own later requests are served.
"""

from __future__ import annotations

import select
import socket
import time
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


def _half_body(address: str) -> bytes:
    """A prelogin that declares 133 bytes of body and sends 18, from ``address``."""
    return (
        b"POST /api/v1/auth/prelogin HTTP/1.1\r\nHost: haven.example\r\n"
        b"X-Forwarded-For: " + address.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 133\r\n\r\n"
        b'{"username": "slow'
    )


@pytest.fixture
def slow_connections(
    short_deadlines: None, production: tuple[Gunicorn, dict[str, str], str]
) -> Iterator[tuple[list[socket.socket], list[socket.socket]]]:
    """Half-sent bodies and half-sent headers, opened before anything else is asked."""
    server = production[0]
    # Each from its own address (the one proxy hop the app trusts says which): this is about
    # the deadlines, not the per-client cap.
    bodies = [_open(server.url, _half_body(f"198.51.100.{n}")) for n in range(SLOW)]
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


CAP = 2  # bodies per client per worker; 2 workers, so at most 4 held at once
GREEDY = "192.0.2.9"


@pytest.fixture
def capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small cap, and a body deadline far beyond the test: held bodies stay held."""
    monkeypatch.setenv("HAVEN_MAX_PENDING_BODIES_PER_CLIENT", str(CAP))
    monkeypatch.setenv("HAVEN_BODY_TIMEOUT_SECONDS", "600")


def _answers(
    socks: list[socket.socket], wanted: int, partial: dict[socket.socket, bytes] | None = None
) -> dict[socket.socket, bytes]:
    """Wait until ``wanted`` of ``socks`` were answered and closed; their answers.

    ``partial`` keeps what was read from sockets not yet closed, so a later call that
    waits on them again sees the whole answer (its status line may have come earlier).
    """
    answered: dict[socket.socket, bytes] = {}
    kept = partial if partial is not None else {}
    waiting = {sock: kept.pop(sock, b"") for sock in socks}
    deadline = time.monotonic() + GENEROUS
    while len(answered) < wanted and time.monotonic() < deadline:
        readable, _, _ = select.select(list(waiting), [], [], 1.0)
        for sock in readable:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                waiting[sock] += chunk
            else:
                answered[sock] = waiting.pop(sock)
    kept.update((sock, data) for sock, data in waiting.items() if data)
    return answered


def _prelogin(url: str, address: str) -> requests.Response:
    return requests.post(
        f"{url}/api/v1/auth/prelogin",
        json={"username": "someone"},
        headers={"X-Forwarded-For": address, "X-Forwarded-Proto": "https"},
        timeout=GENEROUS,
    )


def test_one_client_cannot_hold_more_than_its_share_of_bodies(
    capped: None, production: tuple[Gunicorn, dict[str, str], str], request: pytest.FixtureRequest
) -> None:
    server, settings, _ = production
    greedy = [_open(server.url, _half_body(GREEDY)) for _ in range(SLOW)]
    # Closed even when an assertion fails, so no later test meets them as unclosed sockets.
    request.addfinalizer(lambda: [sock.close() for sock in greedy])
    # All but the few it may hold are refused at once, with the one error shape.
    partial: dict[socket.socket, bytes] = {}
    answered = _answers(greedy, SLOW - 2 * CAP, partial)
    assert len(answered) >= SLOW - 2 * CAP
    for answer in answered.values():
        assert answer.startswith(b"HTTP/1.1 429 "), answer[:200]
        assert b"Retry-After: " in answer
        assert b'"too_many_pending_bodies"' in answer
    held = [sock for sock in greedy if sock not in answered]
    assert 1 <= len(held) <= 2 * CAP
    # Meanwhile: /healthz, another client's bodies, and a signed-in user are served.
    assert requests.get(f"{server.url}/healthz", timeout=GENEROUS).status_code == 200
    assert _prelogin(server.url, "203.0.113.50").status_code == 200
    counsel = proxied_client(server.url)
    counsel.register(_admin_invite(settings), "capped-counsel", PASSPHRASE)
    account = counsel.http.get(f"{server.url}/api/v1/account", timeout=GENEROUS)
    assert account.status_code == 200
    # Those not yet read when counting may have been refused since (their worker was busy
    # with another) or closed unanswered (a worker replaced under load): never anything but
    # the same 429. The rest are still held, unanswered.
    begun = set(select.select(held, [], [], 0)[0]) | set(partial)
    late = _answers(held, len(begun), partial)
    for answer in late.values():
        assert answer == b"" or answer.startswith(b"HTTP/1.1 429 "), answer[:200]
    still = [sock for sock in held if sock not in late]
    assert not select.select(still, [], [], 0)[0]
    # Once the greedy client gives up its half-sent bodies, its slots are free again.
    for sock in greedy:
        sock.close()
    deadline = time.monotonic() + GENEROUS
    statuses = []
    while time.monotonic() < deadline:
        statuses = [_prelogin(server.url, GREEDY).status_code for _ in range(2 * CAP + 1)]
        if set(statuses) == {200}:
            break
        time.sleep(0.2)
    assert set(statuses) == {200}
