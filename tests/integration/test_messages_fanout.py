"""Delivery across processes: two gunicorn instances (two workers each) on one PostgreSQL
database and one Redis. A message sent through one instance wakes streams on the other."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from flask import Flask

from tests.authz import World
from tests.integration.messages_fixtures import (
    AppProcess,
    app_processes,
    client_account,
    shared,
    world,
)
from tests.integration.test_messages_events import Listener, http_client
from tests.services import RedisServer
from vault.client.messages import Messenger
from vault.messages.fanout import CHANNEL, RedisFanout

__all__ = ["shared", "world"]  # fixtures used by the tests below


@pytest.fixture
def instances(shared: dict[str, str], tmp_path: Path) -> Iterator[list[AppProcess]]:
    """Two gunicorn instances with two gthread workers each."""
    with app_processes(shared, 2, log=tmp_path / "gunicorn.log") as procs:
        yield procs


def test_sse_delivers_across_two_app_processes_through_redis(
    world: World, instances: list[AppProcess]
) -> None:
    app: Flask = world.extra["app"]
    assert isinstance(app.extensions["haven.fanout"], RedisFanout)
    cid = world.extra["cid"]
    a, b = instances
    p = world.people
    # Several streams per instance, so both workers of each hold some.
    counsel_on_a = [Listener(http_client(app, a.url, p["counsel"].id)) for _ in range(3)]
    survivor_on_b = [Listener(http_client(app, b.url, p["survivor"].id)) for _ in range(3)]
    for listener in counsel_on_a + survivor_on_b:
        assert listener.next().kind == "ready"

    survivor_via_b = Messenger(http_client(app, b.url, p["survivor"].id))
    counsel_via_a = Messenger(http_client(app, a.url, p["counsel"].id))
    for messenger, person in ((survivor_via_b, p["survivor"]), (counsel_via_a, p["counsel"])):
        messenger.client.account = client_account(person)

    sent_b = survivor_via_b.send(cid, "sent through instance B")
    for listener in counsel_on_a + survivor_on_b:
        event = listener.until("message")
        assert event.data == {"conversation_id": cid, "message_id": sent_b["id"], "seq": 1}

    sent_a = counsel_via_a.send(cid, "sent through instance A")
    for listener in counsel_on_a + survivor_on_b:
        assert listener.until("message").data["message_id"] == sent_a["id"]

    # Either instance serves what the other stored, and it decrypts.
    texts = [m.text for m in survivor_via_b.read(cid)]
    assert texts == ["sent through instance A", "sent through instance B"]
    for listener in counsel_on_a + survivor_on_b:
        listener.close()


def test_resume_on_the_other_instance_is_exact(world: World, instances: list[AppProcess]) -> None:
    app: Flask = world.extra["app"]
    cid = world.extra["cid"]
    a, b = instances
    p = world.people
    first = Listener(http_client(app, a.url, p["counsel"].id))
    token = first.next().id
    first.close()
    sender = Messenger(http_client(app, b.url, p["survivor"].id))
    sender.client.account = client_account(p["survivor"])
    ids = [sender.send(cid, f"while away {i}")["id"] for i in range(3)]
    resumed = Listener(http_client(app, b.url, p["counsel"].id), token)
    assert resumed.next().kind == "ready"
    assert [resumed.until("message").data["message_id"] for _ in ids] == ids
    resumed.close()


def test_wake_ups_are_published_off_the_sending_thread_and_merged(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")  # its own: the test pauses it
    server.start()
    assert server.proc is not None
    sender = RedisFanout(server.url)
    heard = redis.Redis.from_url(server.url).pubsub()  # type: ignore[no-untyped-call]
    heard.subscribe(CHANNEL)
    assert _next(heard)["type"] == "subscribe"
    sender.publish(["warm-up"])  # connects the publisher before Redis stops answering
    assert json.loads(_next(heard)["data"]) == ["warm-up"]
    try:
        server.proc.send_signal(signal.SIGSTOP)
        try:
            # With Redis not answering, each call still returns: no request waits on it.
            for ids in (["u1"], ["u2", "u3"], ["u3", "u4"]):
                sender.publish(ids)
        finally:
            server.proc.send_signal(signal.SIGCONT)
        got: list[list[str]] = []
        while {i for ids in got for i in ids} != {"u1", "u2", "u3", "u4"}:
            got.append(json.loads(_next(heard)["data"]))
        # The first may have left before the others were queued; those waiting are merged.
        assert len(got) < 3
    finally:
        heard.close()
        sender.close()
        server.stop()


def _next(pubsub: Any) -> dict[str, Any]:
    """The next message on a subscription (the test fails after 30 s without one)."""
    message = pubsub.get_message(timeout=30)
    assert message is not None
    return cast(dict[str, Any], message)
