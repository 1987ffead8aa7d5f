"""Stream reads in rounds (vault/messages/reads.py) on PostgreSQL: one read answers several
accounts, each with only its own events, and a held connection that broke is replaced."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import sqlalchemy
from flask import Flask

from tests.authz import World, build_world
from tests.factories import session_cookie_for
from tests.integration.messages_fixtures import envelope_body, make_envelope, open_conversation
from tests.services import wait_for
from vault.accounts import services as accounts
from vault.db import database
from vault.messages import services
from vault.messages.fanout import Hub
from vault.messages.reads import Round, StreamReader
from vault.messages.stream import SharedRead

WAIT = 30.0


def _send(app: Flask, world: World, actor: str, peer: str, cid: str) -> str:
    """Send a message in a conversation as ``actor``; its id."""
    p = world.people
    client = app.test_client()
    session_cookie_for(app, client, p[actor].id)
    envelope = make_envelope(p[actor], cid, [p[actor], p[peer]], f"from {actor}")
    response = client.post(f"/api/v1/conversations/{cid}/messages", json=envelope_body(envelope))
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["message"]["id"])


def _ours(app: Flask) -> tuple[World, str, int]:
    """The accounts, a conversation between the survivor and counsel, and the log's end."""
    world = build_world(app)
    p = world.people
    cid = open_conversation(app, p["survivor"], world.case_id, [p["counsel"]])
    with database(app).sessions() as db:
        return world, cid, services.stream_start(db, None).position


def _one_round(app: Flask, hub: Hub, wanted: dict[str, int]) -> Round:
    """Every account of ``wanted`` asks for a read at once; the one round that answered all."""
    reader: StreamReader = app.extensions["haven.stream_reader"]
    readers = app.extensions["haven.stream_slots"].reads
    held = [readers.acquire(blocking=False) for _ in range(app.config["HAVEN_SSE_DB_READERS"])]
    assert all(held)  # no round can start until every account has joined the first one
    answers: dict[str, Round] = {}
    threads = [
        threading.Thread(target=lambda u=u, a=a: answers.update({u: reader.read(hub, u, a)}))
        for u, a in wanted.items()
    ]
    for thread in threads:
        thread.start()
    wait_for(lambda: reader.gathering() == set(wanted), "every account to join the round")
    for _ in held:
        readers.release()
    for thread in threads:
        thread.join(timeout=WAIT)
    rounds = {id(found) for found in answers.values()}
    assert len(answers) == len(wanted) and len(rounds) == 1, "one round for every account"
    return answers[next(iter(wanted))]


def test_accounts_woken_together_share_one_read_and_each_gets_only_its_own_events(
    app: Flask,
) -> None:
    world, ours, start = _ours(app)
    p = world.people
    theirs = open_conversation(
        app, p["stranger_survivor"], world.stranger_case_id, [p["stranger_counsel"]]
    )
    mine = _send(app, world, "survivor", "counsel", ours)
    other = _send(app, world, "stranger_survivor", "stranger_counsel", theirs)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    hub = app.extensions["haven.fanout"].hub
    engine = database(app).engine
    wanted = {p[who].id: start for who in ("counsel", "stranger_counsel", "admin")}
    sqlalchemy.event.listen(engine, "before_cursor_execute", count)
    try:
        found = _one_round(app, hub, wanted)
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", count)
    # One round trip: the events and every account's session check in one statement.
    assert len(statements) == 1 and "FROM message_events" in statements[0], statements
    got = {
        who: [(e.conversation_id, e.message_id) for e in found.events[p[who].id]]
        for who in ("counsel", "stranger_counsel")
    }
    assert got["counsel"] == [(ours, mine)]
    # The strangers' conversation opened after the cursor: its event, then the message.
    assert got["stranger_counsel"] == [(theirs, None), (theirs, other)]
    assert found.events[p["admin"].id] == []  # in no conversation: nothing
    assert set(found.sessions) == set(wanted)  # every account's session checked in the read
    # A disabled account in a round: its session is no longer valid there.
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.text("UPDATE users SET is_disabled = true WHERE id = :id"),
            {"id": p["stranger_counsel"].id},
        )
    found = _one_round(app, hub, {p["counsel"].id: start, p["stranger_counsel"].id: start})
    assert set(found.sessions) == {p["counsel"].id}
    assert found.events[p["stranger_counsel"].id] == []  # its events are not even read
    assert [e.message_id for e in found.events[p["counsel"].id]] == [mine]
    # Signed out everywhere (session_version bumped): the read names the new session only.
    before = found.sessions[p["counsel"].id]
    with database(app).sessions() as db:
        accounts.end_sessions(db, p["counsel"].id)
    found = _one_round(app, hub, {p["counsel"].id: start})
    assert found.sessions[p["counsel"].id] != before
    shared = SharedRead()
    shared.take(found, p["counsel"].id)
    ring = app.extensions["haven.keyring"]
    # A stream of the old session gets nothing, and ends (stream.py sends "end").
    assert shared.answer(ring, p["counsel"].id, before, start) == (False, [])


def test_a_held_connection_that_broke_is_replaced_and_given_back_with_the_last_stream(
    app: Flask,
) -> None:
    world, cid, start = _ours(app)
    p = world.people
    reader: StreamReader = app.extensions["haven.stream_reader"]
    fanout = app.extensions["haven.fanout"]
    pool = database(app).engine.pool
    counsel = p["counsel"].id
    sub = fanout.subscribe(counsel)  # a stream is open: the reader keeps its connection
    first = _send(app, world, "survivor", "counsel", cid)
    found = reader.read(sub.hub, counsel, start)
    assert [e.message_id for e in found.events[counsel]] == [first]
    assert pool.checkedout() == 1  # type: ignore[attr-defined]
    # PostgreSQL ends every other connection to the database, the held one among them.
    url = database(app).engine.url.set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    second = _send(app, world, "survivor", "counsel", cid)
    found = reader.read(sub.hub, counsel, start)
    assert [e.message_id for e in found.events[counsel]] == [first, second]
    assert set(found.sessions) == {counsel}
    sub.close()
    reader.release(sub.hub)
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
