"""The event tier against real processes: gunicorn + gevent serving only the stream, an app
tier (gthread) serving everything else, one PostgreSQL database and one Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask

from tests.authz import World
from tests.integration.event_tier import EventTierProcess, run_python
from tests.integration.messages_fixtures import (
    AppProcess,
    client_account,
    open_conversation,
    shared,
    world,
)
from tests.integration.test_messages_events import WAIT, Listener, http_client
from tests.services import RedisServer
from vault.accounts import services as accounts
from vault.client import ApiError
from vault.client.messages import Messenger
from vault.config import ConfigError, load_config
from vault.db import database

__all__ = ["shared", "world"]  # fixtures used by the tests below


@pytest.fixture
def tiers(shared: dict[str, str], tmp_path: Path) -> Iterator[tuple[AppProcess, AppProcess]]:
    """An app tier (gthread, stream route off) and an event tier (gevent, one worker)."""
    app_tier = AppProcess({**shared, "HAVEN_TIER": "app"}, log=tmp_path / "app.log")
    event_tier = EventTierProcess(
        {**shared, "HAVEN_SSE_HEARTBEAT_SECONDS": "2"}, workers=1, log=tmp_path / "events.log"
    )
    app_tier.start(wait=False)
    event_tier.start(wait=False)
    try:
        app_tier.wait()
        event_tier.wait()
        yield app_tier, event_tier
    finally:
        event_tier.stop()
        app_tier.stop()


def _messenger(app: Flask, url: str, world: World, actor: str) -> Messenger:
    messenger = Messenger(http_client(app, url, world.people[actor].id))
    messenger.client.account = client_account(world.people[actor])
    return messenger


def test_the_event_tier_serves_the_stream_only_and_the_app_tier_everything_else(
    world: World, tiers: tuple[AppProcess, AppProcess]
) -> None:
    app: Flask = world.extra["app"]
    app_tier, event_tier = tiers
    anonymous = requests.get(f"{event_tier.url}/api/v1/events", timeout=WAIT)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    cookies = http_client(app, event_tier.url, world.people["counsel"].id).http.cookies
    other = requests.get(f"{event_tier.url}/api/v1/conversations", cookies=cookies, timeout=WAIT)
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"
    assert requests.get(f"{event_tier.url}/readyz", timeout=WAIT).status_code == 200
    # With an event tier configured, the app tier sends a misrouted stream away at once.
    refused = requests.get(f"{app_tier.url}/api/v1/events", cookies=cookies, timeout=WAIT)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "busy"
    listed = requests.get(f"{app_tier.url}/api/v1/conversations", cookies=cookies, timeout=WAIT)
    assert listed.status_code == 200


def test_a_message_sent_through_the_app_tier_reaches_streams_on_the_event_tier(
    world: World, tiers: tuple[AppProcess, AppProcess]
) -> None:
    app: Flask = world.extra["app"]
    cid = world.extra["cid"]
    app_tier, event_tier = tiers
    p = world.people
    # Far more streams than a gthread process holds (4), in one gevent worker.
    counsel = [Listener(http_client(app, event_tier.url, p["counsel"].id)) for _ in range(12)]
    survivor = [Listener(http_client(app, event_tier.url, p["survivor"].id)) for _ in range(12)]
    stranger = Listener(http_client(app, event_tier.url, p["stranger_survivor"].id))
    for listener in [*counsel, *survivor, stranger]:
        assert listener.next().kind == "ready"

    sent = _messenger(app, app_tier.url, world, "survivor").send(cid, "through the app tier")
    for listener in counsel + survivor:
        event = listener.until("message")
        assert event.data == {"conversation_id": cid, "message_id": sent["id"], "seq": 1}

    # The stranger's next event is one of their own, made after the message: nothing of
    # the others' conversation came before it.
    own = open_conversation(
        app, p["stranger_survivor"], world.stranger_case_id, [p["stranger_counsel"]]
    )
    assert stranger.next().data == {"conversation_id": own}
    for listener in [*counsel, *survivor, stranger]:
        listener.close()


def test_resume_with_last_event_id_on_the_event_tier_is_exact(
    world: World, tiers: tuple[AppProcess, AppProcess]
) -> None:
    app: Flask = world.extra["app"]
    cid = world.extra["cid"]
    app_tier, event_tier = tiers
    p = world.people
    first = Listener(http_client(app, event_tier.url, p["counsel"].id))
    token = first.next().id
    first.close()
    sender = _messenger(app, app_tier.url, world, "survivor")
    ids = [sender.send(cid, f"while away {i}")["id"] for i in range(3)]
    resumed = Listener(http_client(app, event_tier.url, p["counsel"].id), token)
    assert resumed.next().kind == "ready"
    assert [resumed.until("message").data["message_id"] for _ in ids] == ids
    # A cursor sealed for the counsel means nothing on another account's stream.
    borrowed = Listener(http_client(app, event_tier.url, p["survivor"].id), token)
    assert borrowed.next().kind == "resync"
    resumed.close()
    borrowed.close()


def test_the_event_tier_ends_a_stream_whose_session_ended(
    world: World, tiers: tuple[AppProcess, AppProcess]
) -> None:
    app: Flask = world.extra["app"]
    cid = world.extra["cid"]
    app_tier, event_tier = tiers
    listener = Listener(http_client(app, event_tier.url, world.people["counsel"].id))
    listener.next()
    with app.app_context():
        db = database(app).sessions()
        accounts.end_sessions(db, world.people["counsel"].id)
        db.close()
    _messenger(app, app_tier.url, world, "survivor").send(cid, "wake the stream")
    assert listener.until("end").kind == "end"
    assert listener.events.get(timeout=WAIT) is None


def test_the_tier_setting_is_checked_and_sets_the_stream_defaults() -> None:
    with pytest.raises(ConfigError, match="HAVEN_TIER"):
        load_config({"HAVEN_TIER": "stream"})
    embedded = load_config({})
    assert embedded["HAVEN_TIER"] == "all"
    assert embedded["HAVEN_SSE_MAX_STREAMS"] == 4
    assert embedded["HAVEN_SSE_RECHECK_SECONDS"] == embedded["HAVEN_SSE_HEARTBEAT_SECONDS"]
    tier = load_config({"HAVEN_TIER": "events"})
    assert tier["HAVEN_SSE_MAX_STREAMS"] == 10000
    assert tier["HAVEN_SSE_RECHECK_SECONDS"] == 60


COOPERATIVE = """
import sys
from gevent import monkey

monkey.patch_all()
import gevent
import psycopg
import redis

order = []


def database():
    with psycopg.connect(sys.argv[1]) as conn:
        conn.execute("SELECT pg_sleep(1)")
    order.append("database")


def pubsub():
    redis.Redis.from_url(sys.argv[2]).blpop(["haven:nothing"], timeout=1)
    order.append("redis")


def other():
    order.append("other")


gevent.joinall([gevent.spawn(database), gevent.spawn(pubsub), gevent.spawn(other)])
print(",".join(order))
"""


def test_psycopg_and_redis_wait_cooperatively_under_gevent(
    database_url: str, redis_server: RedisServer
) -> None:
    """The event tier's premise: a greenlet waiting on PostgreSQL or Redis lets others run."""
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    printed = run_python(COOPERATIVE, dsn, redis_server.url)
    # Spawned last, "other" finishes first: neither wait held the process.
    assert printed[-1].split(",")[0] == "other"
    assert sorted(printed[-1].split(",")) == ["database", "other", "redis"]


WAKE_RACE = """
from gevent import monkey

monkey.patch_all()
import gevent
from vault.messages.fanout import Hub

hub = Hub()
sub = hub.subscribe("u")
waiting = gevent.spawn(sub.wait, 0.05)
gevent.sleep(0)  # the stream now waits, its timeout armed
# A wake-up due before that timeout, run by the loop in the same turn as the timeout:
# the loop is held past both, as a busy worker's loop is.
gevent.get_hub().loop.timer(0.01).start(hub.wake, ["u"])
monkey.get_original("time", "sleep")(0.2)
print(waiting.get() or sub.wait(0))
"""


def test_a_wake_up_that_lands_in_the_same_loop_turn_as_the_wait_timeout_is_kept() -> None:
    """A stream waiting under gevent whose timeout and wake-up fall due together still sees
    the wake-up (it was lost: the stream slept until its next periodic re-read)."""
    assert run_python(WAKE_RACE)[-1] == "True"


WORKER_GC = """
import gc
from vault import gunicorn_events

before = gc.get_threshold()
gunicorn_events.post_worker_init(object())
print(gc.get_freeze_count() > 0, gc.get_threshold() == (gunicorn_events.GC_YOUNG, *before[1:]))
"""


def test_the_worker_freezes_the_loaded_app_and_collects_young_objects_less_often() -> None:
    """vault/gunicorn_events.py tunes the worker's garbage collector once the app is loaded."""
    assert run_python(WORKER_GC)[-2:] == ["True", "True"]


def test_a_dropped_stream_frees_its_slot_on_the_event_tier_before_any_heartbeat(
    world: World, shared: dict[str, str], tmp_path: Path
) -> None:
    """Under gevent the socket's hang-up itself ends a stream (no heartbeat due for ten
    minutes, no periodic look): the tier's one slot is free again for the next page."""
    app: Flask = world.extra["app"]
    settings = {**shared, "HAVEN_SSE_HEARTBEAT_SECONDS": "600", "HAVEN_SSE_MAX_STREAMS": "1"}
    tier = EventTierProcess(settings, workers=1, log=tmp_path / "events.log")
    tier.start()
    try:
        counsel = world.people["counsel"].id
        first = Listener(http_client(app, tier.url, counsel))
        assert first.next().kind == "ready"
        with pytest.raises(ApiError) as refused:
            Listener(http_client(app, tier.url, counsel))
        assert refused.value.code == "busy"
        first.close()
        deadline = time.monotonic() + WAIT
        while True:
            try:
                second = Listener(http_client(app, tier.url, counsel))
                break
            except ApiError as exc:
                assert exc.code == "busy" and time.monotonic() < deadline
                time.sleep(0.1)
        assert second.next().kind == "ready"
        second.close()
    finally:
        tier.stop()
