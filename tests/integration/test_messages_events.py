"""Server-sent events over real HTTP: ids only, exact resume, session end, stream cap."""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests
import sqlalchemy
from flask import Flask
from sqlalchemy import select, text, update

from tests.authz import World, build_world
from tests.conftest import LiveServer
from tests.factories import session_cookie_for
from tests.integration.messages_fixtures import envelope_body, make_envelope, open_conversation
from tests.services import wait_for
from vault.accounts import services as accounts
from vault.client import HavenClient, WitnessPolicy
from vault.client.messages import Event, Messenger, parse_events
from vault.db import database
from vault.messages import services
from vault.messages.models import EventKind, MessageClock, MessageEvent
from vault.messages.stream import BATCH

WAIT = 30.0


def http_client(app: Flask, base_url: str, person_id: str) -> HavenClient:
    """A HavenClient carrying a session cookie for an account (no login KDF)."""
    test_client = app.test_client()
    session_cookie_for(app, test_client, person_id)
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = test_client.get_cookie(name)
    assert cookie is not None
    client = HavenClient(base_url, witnesses=WitnessPolicy.unwitnessed())
    client.http.cookies.set(name, cookie.value)
    return client


class Listener:
    """Reads one event stream on a thread into a queue."""

    def __init__(self, client: HavenClient, last_event_id: str | None = None) -> None:
        self.events: queue.Queue[Event | BaseException | None] = queue.Queue()
        self.response = Messenger(client).connect_events(last_event_id, read_timeout=WAIT)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in parse_events(self.response.iter_lines(decode_unicode=True)):
                self.events.put(event)
        except BaseException as exc:
            self.events.put(exc)
        self.events.put(None)

    def next(self) -> Event:
        """The next event; fails the test if the stream ends or errs first."""
        item = self.events.get(timeout=WAIT)
        if isinstance(item, BaseException):
            raise item
        assert item is not None, "the stream ended"
        return item

    def until(self, kind: str) -> Event:
        """Skip to the next event of a kind."""
        while True:
            event = self.next()
            if event.kind == kind:
                return event

    def close(self) -> None:
        """Drop the connection as a phone losing signal would."""
        # http.client hands the socket to the response; shutting it down wakes the reader.
        fp = self.response.raw._fp
        if fp is not None and fp.fp is not None:
            fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=WAIT)
        self.response.close()


@pytest.fixture
def world(app: Flask) -> World:
    """The accounts, and a conversation between the survivor and their counsel."""
    built = build_world(app)
    p = built.people
    built.extra["cid"] = open_conversation(app, p["survivor"], built.case_id, [p["counsel"]])
    return built


def sender(app: Flask, world: World, actor: str) -> Callable[[str], str]:
    """A function that sends a message as ``actor`` and returns its id."""
    client = app.test_client()
    session_cookie_for(app, client, world.people[actor].id)
    p = world.people
    cid = world.extra["cid"]

    def _send(text: str) -> str:
        envelope = make_envelope(p[actor], cid, [p["survivor"], p["counsel"]], text)
        response = client.post(
            f"/api/v1/conversations/{cid}/messages", json=envelope_body(envelope)
        )
        assert response.status_code == 201, response.get_json()
        return str(response.get_json()["message"]["id"])

    return _send


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_events_carry_ids_only_and_resume_exactly(
    app: Flask, world: World, live_server: LiveServer
) -> None:
    counsel = http_client(app, live_server.url, world.people["counsel"].id)
    send = sender(app, world, "survivor")
    listener = Listener(counsel)
    ready = listener.next()
    assert ready.kind == "ready" and ready.id
    first = [send(f"live {i}") for i in range(3)]
    got = [listener.until("message") for _ in first]
    assert [e.data["message_id"] for e in got] == first
    assert [e.data["seq"] for e in got] == [1, 2, 3]
    for event in got:
        assert set(event.data) == {"conversation_id", "message_id", "seq"}
        assert event.data["conversation_id"] == world.extra["cid"]
    listener.close()

    missed = [send(f"while away {i}") for i in range(4)]
    resumed = Listener(counsel, got[-1].id)
    assert resumed.next().kind == "ready"
    again = [resumed.until("message") for _ in missed]
    assert [e.data["message_id"] for e in again] == missed
    resumed.close()

    # Resuming from the middle replays exactly what followed.
    middle = Listener(counsel, got[0].id)
    middle.next()
    replay = [middle.until("message").data["message_id"] for _ in range(6)]
    assert replay == first[1:] + missed
    middle.close()


def test_a_cursor_cannot_be_forged_or_borrowed(
    app: Flask, world: World, live_server: LiveServer
) -> None:
    counsel = http_client(app, live_server.url, world.people["counsel"].id)
    survivor = http_client(app, live_server.url, world.people["survivor"].id)
    mine = Listener(survivor)
    token = mine.next().id
    mine.close()
    for cursor in ["1", "garbage", token]:
        listener = Listener(counsel, cursor)
        assert listener.next().kind == "resync"
        listener.close()


def test_other_conversations_events_are_not_delivered(
    app: Flask, world: World, live_server: LiveServer
) -> None:
    p = world.people
    stranger = http_client(app, live_server.url, p["stranger_counsel"].id)
    listener = Listener(stranger)
    listener.next()
    send = sender(app, world, "survivor")
    send("not for strangers")
    other = open_conversation(
        app, p["stranger_counsel"], world.stranger_case_id, [p["stranger_survivor"]]
    )
    event = listener.until("conversation")
    assert event.data == {"conversation_id": other}
    listener.close()


def test_stream_ends_when_the_session_ends(
    app: Flask, world: World, live_server: LiveServer
) -> None:
    counsel = http_client(app, live_server.url, world.people["counsel"].id)
    listener = Listener(counsel)
    listener.next()
    with app.app_context():
        db = database(app).sessions()
        accounts.end_sessions(db, world.people["counsel"].id)
        db.close()
    sender(app, world, "survivor")("wake the stream")
    assert listener.until("end").kind == "end"
    assert listener.events.get(timeout=WAIT) is None


def test_streams_per_process_are_capped(make_app: Callable[..., Flask]) -> None:
    app = make_app(HAVEN_SSE_MAX_STREAMS="1")
    world = build_world(app)
    with LiveServer(app) as server:
        first = Listener(http_client(app, server.url, world.people["counsel"].id))
        first.next()
        second = requests.get(
            f"{server.url}/api/v1/events",
            cookies=http_client(app, server.url, world.people["survivor"].id).http.cookies,
            timeout=WAIT,
        )
        assert second.status_code == 503
        assert second.json()["error"]["code"] == "busy"
        first.close()


def test_heartbeats_keep_an_idle_stream_open(make_app: Callable[..., Flask]) -> None:
    app = make_app(HAVEN_SSE_HEARTBEAT_SECONDS="1")
    world = build_world(app)
    with LiveServer(app) as server:
        client = http_client(app, server.url, world.people["counsel"].id)
        response = client.request("GET", "/events", stream=True, timeout=(10, WAIT))
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-store"
        lines: list[Any] = []
        for line in response.iter_lines(decode_unicode=True):
            lines.append(line)
            if line == ": keepalive":
                break
        response.close()
        assert lines[0] == "retry: 3000"


def test_concurrent_sends_number_without_gaps_and_streams_see_each_once(
    app: Flask, world: World, live_server: LiveServer
) -> None:
    p = world.people
    cid2 = open_conversation(app, p["counsel"], world.case_id, [p["survivor"]])
    listener = Listener(http_client(app, live_server.url, p["counsel"].id))
    listener.next()
    cids = [world.extra["cid"], cid2]
    sent: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        actor = "survivor" if i % 2 else "counsel"
        client = http_client(app, live_server.url, p[actor].id)
        for k in range(6):
            cid = cids[(i + k) % 2]
            envelope = make_envelope(p[actor], cid, [p["survivor"], p["counsel"]], f"{i}/{k}")
            mid = client.post(f"/conversations/{cid}/messages", envelope_body(envelope))["message"][
                "id"
            ]
            with lock:
                sent.append(mid)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert len(sent) == 48
    received = [listener.until("message") for _ in sent]
    assert sorted(e.data["message_id"] for e in received) == sorted(sent)
    for cid in cids:
        seqs = [e.data["seq"] for e in received if e.data["conversation_id"] == cid]
        assert sorted(seqs) == list(range(1, 25))
    listener.close()
    with database(app).engine.connect() as conn:
        events = conn.execute(select(MessageEvent.seq).order_by(MessageEvent.seq)).scalars().all()
    assert events == list(range(events[0], events[0] + len(events)))


def test_a_late_commit_is_never_skipped_by_a_cursor(app: Flask, world: World) -> None:
    """An event numbered earlier becomes visible before any numbered after it."""
    p = world.people
    cid2 = open_conversation(app, p["counsel"], world.case_id, [p["survivor"]])
    engine = database(app).engine
    with database(app).sessions() as db:
        start = services.stream_start(db, None).position
    early = database(app).sessions()
    early.execute(update(MessageClock).values(seq=MessageClock.seq))  # takes the clock's lock
    done = threading.Event()

    def later_send() -> None:
        sender(app, world, "survivor")("numbered after the open transaction")
        done.set()

    thread = threading.Thread(target=later_send)
    thread.start()
    wait_for(lambda: _lock_waiters(engine) > 0, "the second send to wait for the clock")
    with database(app).sessions() as db:
        assert services.events_after(db, p["counsel"].id, start) == []
    services._append_event(early, cid2, EventKind.CONVERSATION)
    early.commit()
    early.close()
    thread.join(timeout=WAIT)
    assert done.is_set()
    with database(app).sessions() as db:
        events = services.events_after(db, p["counsel"].id, start)
    assert [e.kind for e in events] == [EventKind.CONVERSATION, EventKind.MESSAGE]
    assert [e.seq for e in events] == [start + 1, start + 2]


def _lock_waiters(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
        )


def test_open_streams_hold_no_database_connection_beyond_the_one_reader(
    make_app: Callable[..., Flask],
) -> None:
    # One reader: whatever the number of streams, the process holds at most one connection.
    app = make_app(HAVEN_SSE_DB_READERS="1")
    world = build_world(app)
    p = world.people
    world.extra["cid"] = open_conversation(app, p["survivor"], world.case_id, [p["counsel"]])
    pool = database(app).engine.pool
    with LiveServer(app) as server:
        listeners = [
            Listener(http_client(app, server.url, p[who].id))
            for who in ("survivor", "counsel", "survivor")
        ]
        for listener in listeners:
            assert listener.next().kind == "ready"
        wait_for(lambda: pool.checkedout() == 0, "every stream to give back its connection")  # type: ignore[attr-defined]
        sender(app, world, "survivor")("still delivered")
        for listener in listeners:
            assert listener.until("message").kind == "message"
        assert pool.checkedout() <= 1  # type: ignore[attr-defined]
        for listener in listeners:
            listener.close()
        # The last stream gone, the reader gives its connection back.
        wait_for(lambda: pool.checkedout() == 0, "the reader to give back its connection")  # type: ignore[attr-defined]


def test_streams_of_one_account_woken_together_share_one_read(
    make_app: Callable[..., Flask],
) -> None:
    # Periodic re-reads far off, so every read below is one a wake-up caused.
    app = make_app(
        HAVEN_SSE_RECHECK_SECONDS="600",
        HAVEN_SSE_MAX_STREAMS="8",
        HAVEN_LIMIT_MESSAGE_SEND="1000/minute",
    )
    world = build_world(app)
    p = world.people
    world.extra["cid"] = open_conversation(app, p["survivor"], world.case_id, [p["counsel"]])
    send = sender(app, world, "survivor")
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM message_events" in statement:
            reads.append(statement)

    engine = database(app).engine
    with LiveServer(app) as server:
        counsel = http_client(app, server.url, p["counsel"].id)
        first = Listener(counsel)
        opened = first.next()
        early = send("before the others opened")
        assert first.until("message").data["message_id"] == early
        # Three more pages of the same account; one resumes from before the first message.
        others = [Listener(counsel), Listener(counsel), Listener(counsel, opened.id)]
        for listener in others:
            assert listener.next().kind == "ready"
        assert others[2].until("message").data["message_id"] == early
        listeners = [first, *others]
        # Once every page has this one, each has made its first read after opening.
        settled = send("every page is reading")
        for listener in listeners:
            assert listener.until("message").data["message_id"] == settled
        sqlalchemy.event.listen(engine, "before_cursor_execute", count)
        try:
            one = send("one wake-up for four pages")
            for listener in listeners:
                assert listener.until("message").data["message_id"] == one
        finally:
            sqlalchemy.event.remove(engine, "before_cursor_execute", count)
        assert len(reads) == 1, reads
        # More than a batch in a row: every page still gets each event once, in order.
        burst = [send(f"burst {i}") for i in range(BATCH + 20)]
        for listener in listeners:
            got = [listener.until("message").data["message_id"] for _ in burst]
            assert got == burst
        assert early not in burst
        for listener in listeners:
            listener.close()
