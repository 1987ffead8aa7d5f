"""The Python client and a kept-alive connection the server closed while it was idle.

The production gunicorn closes idle keep-alive connections after HAVEN_KEEPALIVE_SECONDS (1 s
here). A client that sends on such a connection just as the server closes it gets no answer
(RemoteDisconnected or a reset). urllib3 normally notices a closed connection before reusing
it, so the race is rare; here its dropped-connection check is switched off, which makes every
reuse of a closed connection land in that race, deterministically. The server is real.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator

import pytest
import requests
import urllib3.connectionpool

from tests.conftest import PASSPHRASE
from tests.integration import test_production
from tests.integration.test_production import Gunicorn, _admin_invite, proxied_client
from vault.client import HavenClient

production = test_production.production  # the production gunicorn fixture, reused


@pytest.fixture
def short_keepalive(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Idle connections closed by the server after 1 s; the client does not look first."""
    monkeypatch.setenv("HAVEN_KEEPALIVE_SECONDS", "1")
    monkeypatch.setattr(urllib3.connectionpool, "is_connection_dropped", lambda conn: False)
    yield


def _wait_until_server_closed(client: HavenClient) -> None:
    """Block until the server has closed every idle pooled connection of ``client``."""
    adapter = client.http.get_adapter(client.base_url)
    pools = list(adapter.poolmanager.pools._container.values())  # type: ignore[attr-defined]
    conns = [c for pool in pools for c in list(pool.pool.queue) if c is not None]
    socks = [c.sock for c in conns if c.sock is not None]
    assert socks, "the client kept no connection alive"
    deadline = time.monotonic() + 60
    while socks and time.monotonic() < deadline:
        readable, _, _ = select.select(socks, [], [], 1.0)
        for sock in readable:
            socks.remove(sock)  # end-of-file: the server closed it
    assert not socks


def test_idempotent_requests_survive_a_connection_closed_while_idle(
    short_keepalive: None, production: tuple[Gunicorn, dict[str, str], str]
) -> None:
    server, settings, _ = production
    counsel = proxied_client(server.url)
    counsel.register(_admin_invite(settings), "stale-counsel", PASSPHRASE)

    # Sign-in (prelogin and login) repeats itself on a fresh connection.
    _wait_until_server_closed(counsel)
    assert counsel.login("stale-counsel", PASSPHRASE).username == "stale-counsel"
    # So does a read.
    _wait_until_server_closed(counsel)
    assert counsel.cases() == []

    # A request the protocol does not make idempotent is not repeated: the failure surfaces,
    # and the server never saw the request.
    _wait_until_server_closed(counsel)
    with pytest.raises(requests.ConnectionError):
        counsel.create_invite("counsel")
    assert counsel.cases() == []
