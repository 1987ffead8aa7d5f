"""The send path on PostgreSQL: its round trips, and its re-check under the conversation's lock."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import sqlalchemy
from flask import Flask
from sqlalchemy import text

from tests.authz import World, build_world
from tests.factories import row_counts, session_cookie_for
from tests.integration.messages_fixtures import envelope_body, make_envelope, open_conversation
from tests.services import wait_for
from vault.accounts import rotation
from vault.db import database, utcnow


def _counsel(app: Flask, world: World) -> Any:
    client = app.test_client()
    session_cookie_for(app, client, world.people["counsel"].id)
    return client


def _send(client: Any, world: World, cid: str, text_: str) -> Any:
    p = world.people
    envelope = make_envelope(p["counsel"], cid, [p["survivor"], p["counsel"]], text_)
    return client.post(f"/api/v1/conversations/{cid}/messages", json=envelope_body(envelope))


def test_a_send_is_four_statements_after_the_session(app: Flask) -> None:
    """Members with keys, number-and-insert, event-and-re-check, commit: nothing more."""
    world = build_world(app)
    p = world.people
    cid = open_conversation(app, p["survivor"], world.case_id, [p["counsel"]])
    client = _counsel(app, world)
    assert _send(client, world, cid, "warm").status_code == 201
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.lstrip().split(None, 1)[0])

    engine = database(app).engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", record)
    try:
        assert _send(client, world, cid, "counted").status_code == 201
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", record)
    # The session's account, the members with their keys, then two statements that each
    # begin WITH (number and insert the message; tick, insert the event, re-read keys).
    assert statements == ["SELECT", "SELECT", "WITH", "WITH"], statements


def test_a_rotation_committed_while_a_send_waits_for_the_lock_is_seen(app: Flask) -> None:
    """A rotation holds the account's and its conversations' rows (§14); a send that read
    the members before the rotation committed waits for the conversation's row, and the
    re-check after it must see the rotation: refused, nothing stored."""
    world = build_world(app)
    p = world.people
    cid = open_conversation(app, p["survivor"], world.case_id, [p["counsel"]])
    client = _counsel(app, world)
    before = row_counts(app)
    engine = database(app).engine
    with app.app_context():
        rotating = database(app).sessions()
        rotation._lock_account(rotating, p["survivor"].id, utcnow() + timedelta(minutes=5))
        answers: list[Any] = []
        sender = threading.Thread(target=lambda: answers.append(_send(client, world, cid, "x")))
        sender.start()

        def send_waits() -> bool:
            with engine.connect() as conn:
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE '%INSERT INTO messages%'"
                    )
                )
                return bool(waiting.scalar_one())

        try:
            wait_for(send_waits, "the send waiting for the conversation's row")
        finally:
            rotating.commit()
            rotating.close()
            sender.join(timeout=60)
    assert answers[0].status_code == 409, answers[0].json
    assert answers[0].json["error"]["code"] == "keys_rotating"
    assert row_counts(app) == before
