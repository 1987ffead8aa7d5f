"""Conversations and messages through the API on PostgreSQL: send, list, delete, timers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select, update

from tests.authz import World, build_world
from tests.factories import make_person, row_counts, session_cookie_for
from tests.integration.messages_fixtures import (
    add_to_case,
    envelope_body,
    make_envelope,
    open_conversation,
)
from tests.services import RedisServer
from vault.accounts.models import Role
from vault.client.messages import parse_envelope
from vault.db import database, utcnow
from vault.messages import purge, services
from vault.messages.models import Message, MessageEvent
from vault.protocol import messages as pmsg

BOTH_DATABASES = pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)


@pytest.fixture
def world(app: Flask) -> World:
    """Survivor + counsel in a case, an admin, and a case of strangers."""
    return build_world(app)


def as_(app: Flask, world: World, actor: str) -> Any:
    """A test client signed in as one of the world's people."""
    client = app.test_client()
    session_cookie_for(app, client, world.people[actor].id)
    return client


def pair(app: Flask, world: World) -> str:
    """A conversation between the survivor and their counsel."""
    p = world.people
    return open_conversation(app, p["survivor"], world.case_id, [p["counsel"]])


def send(client: Any, world: World, sender: str, cid: str, text: str = "hi", **kw: Any) -> Any:
    p = world.people
    members = [p["survivor"], p["counsel"], *kw.pop("extra", [])]
    envelope = make_envelope(p[sender], cid, members, text, **kw)
    return client.post(f"/api/v1/conversations/{cid}/messages", json=envelope_body(envelope))


def test_survivor_opens_a_conversation_with_counsel(app: Flask, world: World) -> None:
    p = world.people
    client = as_(app, world, "survivor")
    response = client.post(
        f"/api/v1/cases/{world.case_id}/conversations", json={"members": [p["counsel"].id]}
    )
    assert response.status_code == 201, response.get_json()
    conversation = response.get_json()["conversation"]
    assert sorted(conversation["members"]) == sorted([p["survivor"].id, p["counsel"].id])
    assert conversation["ttl"] == 0 and conversation["unread"] == 0
    detail = client.get(f"/api/v1/conversations/{conversation['id']}").get_json()["conversation"]
    by_id = {m["user_id"]: m for m in detail["members"]}
    assert by_id[p["counsel"].id]["username"] == "counsel.a"
    assert by_id[p["counsel"].id]["public_keys"]["x25519"]
    listed = as_(app, world, "counsel").get("/api/v1/conversations").get_json()
    assert [c["id"] for c in listed["conversations"]] == [conversation["id"]]


def test_group_conversation_with_several_counsel(app: Flask, world: World) -> None:
    with app.app_context():
        db = database(app).sessions()
        second = make_person(db, app.extensions["haven.keyring"], Role.COUNSEL, "counsel.c")
        db.close()
    add_to_case(app, world.case_id, second)
    p = world.people
    cid = open_conversation(app, p["counsel"], world.case_id, [p["survivor"], second])
    client = as_(app, world, "counsel")
    response = send(client, world, "counsel", cid, "to both", extra=[second])
    assert response.status_code == 201, response.get_json()
    assert len(response.get_json()["message"]["recipients"]) == 3


@pytest.mark.parametrize(
    ("who", "members", "code"),
    [
        ("counsel", [], "invalid_request"),
        ("counsel", ["stranger_survivor"], "not_case_members"),
        ("survivor", ["survivor"], "invalid_request"),
        ("counsel", ["counsel"], "invalid_request"),
    ],
)
def test_conversation_members_must_be_of_the_case(
    app: Flask, world: World, who: str, members: list[str], code: str
) -> None:
    before = row_counts(app)
    client = as_(app, world, who)
    ids = [world.people[m].id for m in members]
    response = client.post(f"/api/v1/cases/{world.case_id}/conversations", json={"members": ids})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code
    assert row_counts(app) == before


def test_counsel_only_conversation_is_refused(app: Flask, world: World) -> None:
    with app.app_context():
        db = database(app).sessions()
        second = make_person(db, app.extensions["haven.keyring"], Role.COUNSEL, "counsel.d")
        db.close()
    add_to_case(app, world.case_id, second)
    response = as_(app, world, "counsel").post(
        f"/api/v1/cases/{world.case_id}/conversations", json={"members": [second.id]}
    )
    assert response.status_code == 400
    assert "survivor" in response.get_json()["error"]["message"]


@BOTH_DATABASES
def test_send_list_get_and_idempotent_retry(app: Flask, world: World) -> None:
    cid = pair(app, world)
    p = world.people
    client = as_(app, world, "survivor")
    envelope = make_envelope(p["survivor"], cid, [p["counsel"]], "I am safe tonight")
    first = client.post(f"/api/v1/conversations/{cid}/messages", json=envelope_body(envelope))
    assert first.status_code == 201, first.get_json()
    counts = row_counts(app)
    again = client.post(f"/api/v1/conversations/{cid}/messages", json=envelope_body(envelope))
    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    assert row_counts(app) == counts

    message = first.get_json()["message"]
    assert message["seq"] == 1 and message["deleted"] is False
    assert parse_envelope(message) == envelope
    counsel = as_(app, world, "counsel")
    listed = counsel.get(f"/api/v1/conversations/{cid}/messages").get_json()
    assert [m["id"] for m in listed["messages"]] == [message["id"]]
    one = counsel.get(f"/api/v1/conversations/{cid}/messages/{message['id']}").get_json()
    assert one["message"] == message
    text = pmsg.open_envelope(
        parse_envelope(one["message"]), p["counsel"].id, p["counsel"].keys, p["survivor"].public
    )
    assert text == "I am safe tonight"


def test_same_id_with_different_bytes_is_a_conflict(app: Flask, world: World) -> None:
    cid = pair(app, world)
    p = world.people
    client = as_(app, world, "survivor")
    mid = pmsg.new_message_id()
    first = make_envelope(p["survivor"], cid, [p["counsel"]], "one", message_id=mid)
    other = make_envelope(p["survivor"], cid, [p["counsel"]], "two", message_id=mid)
    assert (
        client.post(f"/api/v1/conversations/{cid}/messages", json=envelope_body(first)).status_code
        == 201
    )
    counts = row_counts(app)
    response = client.post(f"/api/v1/conversations/{cid}/messages", json=envelope_body(other))
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "message_id_conflict"
    assert row_counts(app) == counts


@BOTH_DATABASES
def test_pagination_is_newest_first_and_stable_while_messages_arrive(
    app: Flask, world: World
) -> None:
    cid = pair(app, world)
    survivor, counsel = as_(app, world, "survivor"), as_(app, world, "counsel")
    for i in range(7):
        assert send(survivor, world, "survivor", cid, f"m{i}").status_code == 201
    url = f"/api/v1/conversations/{cid}/messages"
    page1 = counsel.get(url, query_string={"limit": 3}).get_json()
    assert [m["seq"] for m in page1["messages"]] == [7, 6, 5]
    assert page1["next_before"] == 5
    for i in range(4):  # new messages arrive between pages
        assert send(counsel, world, "counsel", cid, f"late{i}").status_code == 201
    page2 = counsel.get(url, query_string={"limit": 3, "before": page1["next_before"]}).get_json()
    assert [m["seq"] for m in page2["messages"]] == [4, 3, 2]
    page3 = counsel.get(url, query_string={"limit": 3, "before": page2["next_before"]}).get_json()
    assert [m["seq"] for m in page3["messages"]] == [1]
    assert page3["next_before"] is None
    newer = counsel.get(url, query_string={"after": 7}).get_json()
    assert [m["seq"] for m in newer["messages"]] == [11, 10, 9, 8]


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "before=-1", "after=1.5", "before=0"])
def test_bad_page_parameters(app: Flask, world: World, query: str) -> None:
    cid = pair(app, world)
    response = as_(app, world, "survivor").get(f"/api/v1/conversations/{cid}/messages?{query}")
    assert response.status_code == 400
    assert set(response.get_json()["error"]) == {"code", "message"}


@BOTH_DATABASES
def test_unread_counts_and_read_marker(app: Flask, world: World) -> None:
    cid = pair(app, world)
    survivor, counsel = as_(app, world, "survivor"), as_(app, world, "counsel")
    for i in range(3):
        send(survivor, world, "survivor", cid, f"m{i}")
    send(counsel, world, "counsel", cid, "reply")

    def unread(client: Any) -> int:
        return int(client.get("/api/v1/conversations").get_json()["conversations"][0]["unread"])

    assert unread(counsel) == 3
    assert unread(survivor) == 1
    marked = counsel.post(f"/api/v1/conversations/{cid}/read", json={"seq": 2})
    assert marked.get_json() == {"last_read_seq": 2}
    assert unread(counsel) == 1
    # Markers never move back, and never past the last message.
    assert counsel.post(f"/api/v1/conversations/{cid}/read", json={"seq": 1}).get_json() == {
        "last_read_seq": 2
    }
    assert counsel.post(f"/api/v1/conversations/{cid}/read", json={"seq": 99}).get_json() == {
        "last_read_seq": 4
    }
    assert unread(counsel) == 0


@BOTH_DATABASES
def test_delete_for_everyone_erases_the_ciphertext(app: Flask, world: World) -> None:
    cid = pair(app, world)
    survivor, counsel = as_(app, world, "survivor"), as_(app, world, "counsel")
    message = send(survivor, world, "survivor", cid, "delete me").get_json()["message"]
    url = f"/api/v1/conversations/{cid}/messages/{message['id']}"
    refused = counsel.delete(url, content_type="application/json")
    assert refused.status_code == 403
    assert survivor.delete(url, content_type="application/json").status_code == 204
    assert survivor.delete(url, content_type="application/json").status_code == 204
    with database(app).engine.connect() as conn:
        row = conn.execute(select(Message).where(Message.id == message["id"])).one()
    assert row.body is None and row.signature is None and row.recipients is None
    assert row.deleted_at is not None
    tombstone = counsel.get(url).get_json()["message"]
    assert tombstone["deleted"] is True
    assert "body" not in tombstone and "recipients" not in tombstone
    assert counsel.get("/api/v1/conversations").get_json()["conversations"][0]["unread"] == 0


@BOTH_DATABASES
def test_timer_applies_to_new_messages_and_expired_ones_are_purged(
    app: Flask, world: World
) -> None:
    cid = pair(app, world)
    survivor, counsel = as_(app, world, "survivor"), as_(app, world, "counsel")
    kept = send(survivor, world, "survivor", cid, "before the timer").get_json()["message"]
    response = counsel.put(f"/api/v1/conversations/{cid}/timer", json={"seconds": 3600})
    assert response.status_code == 200
    assert response.get_json()["conversation"]["ttl"] == 3600
    stale = send(survivor, world, "survivor", cid, "old timer", ttl=0)
    assert stale.status_code == 409
    assert stale.get_json()["error"]["code"] == "timer_changed"
    fading = send(survivor, world, "survivor", cid, "fades", ttl=3600).get_json()["message"]
    assert fading["expires_at"] is not None and kept["expires_at"] is None

    with app.app_context():
        db = database(app).sessions()
        result = services.purge(db, timedelta(days=14), now=utcnow() + timedelta(minutes=59))
        assert result.messages == 0
        result = services.purge(
            db, timedelta(days=14), now=utcnow() + timedelta(hours=1, seconds=1)
        )
        assert result.messages == 1 and result.events == 1
        db.close()
    with database(app).engine.connect() as conn:
        ids = set(conn.execute(select(Message.id)).scalars())
        named = set(conn.execute(select(MessageEvent.message_id)).scalars())
    assert ids == {kept["id"]}
    assert fading["id"] not in named
    listed = counsel.get(f"/api/v1/conversations/{cid}/messages").get_json()["messages"]
    assert [m["id"] for m in listed] == [kept["id"]]


@pytest.mark.parametrize("seconds", [1, 60, 7200, -1])
def test_timer_values_are_fixed(app: Flask, world: World, seconds: int) -> None:
    cid = pair(app, world)
    response = as_(app, world, "survivor").put(
        f"/api/v1/conversations/{cid}/timer", json={"seconds": seconds}
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_timer"


def test_expired_messages_are_hidden_before_the_purge_and_purged_at_start(
    make_app: Any, app: Flask, world: World
) -> None:
    cid = pair(app, world)
    counsel = as_(app, world, "counsel")
    counsel.put(f"/api/v1/conversations/{cid}/timer", json={"seconds": 86400})
    survivor = as_(app, world, "survivor")
    gone = send(survivor, world, "survivor", cid, "soon gone", ttl=86400).get_json()["message"]
    with database(app).engine.begin() as conn:
        conn.execute(
            update(Message)
            .where(Message.id == gone["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    url = f"/api/v1/conversations/{cid}/messages"
    assert counsel.get(url).get_json()["messages"] == []
    assert counsel.get(f"{url}/{gone['id']}").status_code == 404
    with database(app).engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Message)).scalar_one() == 1
    make_app()  # a new process starting on the same database purges at start-up
    with database(app).engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Message)).scalar_one() == 0


@BOTH_DATABASES
def test_purge_trims_old_events_and_old_cursors_resync(app: Flask, world: World) -> None:
    cid = pair(app, world)
    survivor = as_(app, world, "survivor")
    for i in range(3):
        send(survivor, world, "survivor", cid, f"m{i}")
    with app.app_context():
        db = database(app).sessions()
        assert services.stream_start(db, 1).is_resync is False
        result = services.purge(db, timedelta(days=1), now=utcnow() + timedelta(days=2))
        assert result.events == 4 and result.messages == 0
        assert services.stream_start(db, 1).is_resync is True
        assert services.stream_start(db, 4).is_resync is False
        db.close()


def test_purge_now_runs_against_the_app_database(app: Flask) -> None:
    assert purge.purge_now(app) == services.PurgeResult(0, 0)


def test_send_limit_per_account(make_app: Any) -> None:
    app = make_app(HAVEN_LIMIT_MESSAGE_SEND="2/minute")
    world = build_world(app)
    cid = pair(app, world)
    survivor = as_(app, world, "survivor")
    assert send(survivor, world, "survivor", cid, "1").status_code == 201
    assert send(survivor, world, "survivor", cid, "2").status_code == 201
    counts = row_counts(app)
    limited = send(survivor, world, "survivor", cid, "3")
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert row_counts(app) == counts
    # The limit is per account: counsel still sends.
    assert send(as_(app, world, "counsel"), world, "counsel", cid, "4").status_code == 201


def test_send_limit_on_redis_counts_and_answers_headers_in_one_round_trip(
    make_app: Any, redis_server: RedisServer
) -> None:
    app = make_app(HAVEN_LIMIT_MESSAGE_SEND="3/minute", HAVEN_LIMITER_STORAGE_URI=redis_server.url)
    world = build_world(app)
    cid = pair(app, world)
    survivor = as_(app, world, "survivor")
    assert send(survivor, world, "survivor", cid, "0").status_code == 201  # loads the script
    stats = redis.Redis.from_url(redis_server.url)
    stats.config_resetstat()
    for left in (1, 0):
        sent = send(survivor, world, "survivor", cid, str(left))
        assert sent.status_code == 201
        assert sent.headers["X-RateLimit-Limit"] == "3"
        assert sent.headers["X-RateLimit-Remaining"] == str(left)
        assert 0 < int(sent.headers["Retry-After"]) <= 60
    counted = stats.info("commandstats")
    assert counted["cmdstat_evalsha"]["calls"] == 2
    # The headers came from the counting script (its own TTL is counted too), with no
    # separate GET and TTL round trips after the view.
    assert "cmdstat_get" not in counted
    assert counted["cmdstat_ttl"]["calls"] == 2
    counts = row_counts(app)
    limited = send(survivor, world, "survivor", cid, "over")
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert row_counts(app) == counts


@pytest.mark.parametrize(
    ("setting", "size", "status"),
    [(None, 65536, 201), (None, 65536 + 256, 413), ("2048", 4096, 413)],
)
def test_body_size_limit(make_app: Any, setting: str | None, size: int, status: int) -> None:
    app = make_app(**({"HAVEN_MESSAGE_MAX_BYTES": setting} if setting else {}))
    world = build_world(app)
    cid = pair(app, world)
    # Padded plaintext of n blocks gives a body of 1 + 24 + 256n + 16 bytes.
    blocks = (size - 1 - 24 - 16) // 256
    text = "x" * (blocks * 256 - 1)
    response = send(as_(app, world, "survivor"), world, "survivor", cid, text)
    body_len = len(make_envelope(world.people["survivor"], cid, [], text).body)
    assert body_len <= size
    assert response.status_code == status, response.get_json()
    if status == 413:
        assert response.get_json()["error"]["code"] == "message_too_large"


def test_haven_messages_purge_command(
    app: Flask, world: World, database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from vault.cli import main

    cid = pair(app, world)
    as_(app, world, "counsel").put(f"/api/v1/conversations/{cid}/timer", json={"seconds": 3600})
    gone = send(as_(app, world, "survivor"), world, "survivor", cid, "x", ttl=3600)
    with database(app).engine.begin() as conn:
        conn.execute(
            update(Message)
            .where(Message.id == gone.get_json()["message"]["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    for key, value in {
        "HAVEN_DATABASE_URL": database_url,
        "HAVEN_KEYS_DIR": str(tmp_path / "keys"),
        "HAVEN_SECURE_COOKIES": "false",
        "HAVEN_MESSAGE_PURGE_SECONDS": "0",
    }.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["messages", "purge"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("purged ")
    with database(app).engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Message)).scalar_one() == 0
