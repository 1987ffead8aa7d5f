"""Case membership by consent (protocol §17): a counsel asks, the survivor decides.

A requested counsel is a stranger to the case until the survivor approves; the request
route answers every username alike and is rate limited; a case's event ids count that
case's events only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from tests.authz import World, build_world
from tests.conftest import PASSPHRASE, LiveServer
from tests.factories import make_person, row_counts, session_cookie_for
from tests.integration.documents_fixtures import fast_documents, pair  # noqa: F401
from vault.accounts.models import Role, User
from vault.cli import main
from vault.client import HavenClient
from vault.client.api import ApiError
from vault.db import database
from vault.protocol.encoding import b64encode

Pair = tuple[HavenClient, HavenClient, str]


def _status(call: Callable[[], Any]) -> int:
    """The HTTP status of a client call (200 when it succeeds)."""
    try:
        call()
    except ApiError as exc:
        return exc.status
    return 200


def _sees_the_case(who: HavenClient, case_id: str, ids: dict[str, str]) -> dict[str, int]:
    """What each case route answers ``who``, and whether the case shows in their lists."""
    survivor_id = ids["survivor"]
    listed = {c["id"] for c in who.get("/cases")["cases"]}
    conversations = {c["case_id"] for c in who.get("/conversations")["conversations"]}
    return {
        "listed": int(case_id in listed),
        "conversation listed": int(case_id in conversations),
        "case": _status(lambda: who.get(f"/cases/{case_id}")),
        "survivor keys": _status(lambda: who.get(f"/users/{survivor_id}/keys")),
        "documents": _status(lambda: who.get(f"/cases/{case_id}/documents")),
        "document": _status(lambda: who.get(f"/documents/{ids['doc']}")),
        "content": _status(lambda: who.request("GET", f"/documents/{ids['doc']}/content")),
        "conversation": _status(lambda: who.get(f"/conversations/{ids['conversation']}")),
        "messages": _status(lambda: who.get(f"/conversations/{ids['conversation']}/messages")),
        "events": _status(lambda: who.get(f"/cases/{case_id}/events")),
        "open conversation": _status(
            lambda: who.post(f"/cases/{case_id}/conversations", {"members": [survivor_id]})
        ),
    }


STRANGER = {
    "listed": 0,
    "conversation listed": 0,
    "case": 404,
    "survivor keys": 404,
    "documents": 404,
    "document": 404,
    "content": 404,
    "conversation": 404,
    "messages": 404,
    "events": 404,
    "open conversation": 404,
}


@pytest.fixture
def scene(
    pair: Pair,  # noqa: F811
    create_account: Callable[..., tuple[HavenClient, str]],
    tmp_path: Path,
) -> tuple[HavenClient, HavenClient, HavenClient, str, dict[str, str]]:
    """A case with a shared document and a conversation, and a counsel outside it."""
    survivor, counsel, case_id = pair
    colleague, _ = create_account("counsel")
    assert survivor.account and counsel.account and colleague.account
    source = tmp_path / "passport.pdf"
    source.write_bytes(b"passport scan")
    doc = fast_documents(survivor).upload(case_id, source, doc_type="passport")
    fast_documents(survivor).grant(doc.id, counsel.account.id)
    conversation = survivor.post(
        f"/cases/{case_id}/conversations", {"members": [counsel.account.id]}
    )["conversation"]
    ids = {"survivor": survivor.account.id, "doc": doc.id, "conversation": conversation["id"]}
    return survivor, counsel, colleague, case_id, ids


def test_a_requested_counsel_sees_nothing_until_the_survivor_approves(
    scene: tuple[HavenClient, HavenClient, HavenClient, str, dict[str, str]], tmp_path: Path
) -> None:
    survivor, counsel, colleague, case_id, ids = scene
    assert colleague.account is not None and counsel.account is not None
    assert _sees_the_case(colleague, case_id, ids) == STRANGER

    counsel.request_counsel(case_id, colleague.account.username)
    assert _sees_the_case(colleague, case_id, ids) == STRANGER
    # Nobody can bring the pending counsel into a conversation either.
    with pytest.raises(ApiError) as err:
        counsel.post(
            f"/cases/{case_id}/conversations",
            {"members": [ids["survivor"], colleague.account.id]},
        )
    assert err.value.code == "not_case_members"
    # Nor share a document with them: the client finds no keys, the server no member.
    with pytest.raises(ApiError) as err:
        fast_documents(survivor).grant(ids["doc"], colleague.account.id)
    assert err.value.code == "not_a_case_member"
    forged = b"\x01" + (1).to_bytes(4, "big") + bytes(96)
    with pytest.raises(ApiError) as err:
        survivor.post(
            f"/documents/{ids['doc']}/grants",
            {"user_id": colleague.account.id, "sealed_key": b64encode(forged)},
        )
    assert err.value.code == "not_a_case_member"

    (pending,) = survivor.member_requests(case_id)
    assert pending["counsel_id"] == colleague.account.id
    assert pending["username"] == colleague.account.username
    assert pending["requested_by"] == counsel.account.id
    kinds = [e["kind"] for e in survivor.get(f"/cases/{case_id}/events")["events"]]
    assert kinds[0] == "member_request"
    # The asking counsel's own history does not show the request (it would say that the
    # username is a counsel account).
    theirs = [e["kind"] for e in counsel.get(f"/cases/{case_id}/events")["events"]]
    assert "member_request" not in theirs

    case = survivor.approve_member(case_id, pending["id"])
    assert colleague.account.id in {m["user_id"] for m in case["members"]}
    assert survivor.member_requests(case_id) == []
    seen = _sees_the_case(colleague, case_id, ids)
    assert seen["listed"] == 1
    assert seen["case"] == seen["survivor keys"] == seen["documents"] == seen["events"] == 200
    # Like any member: documents need a grant, conversations need to include them.
    assert seen["document"] == seen["content"] == 404
    assert seen["conversation"] == 404 and seen["open conversation"] == 200
    assert colleague.get(f"/cases/{case_id}/documents")["documents"] == []
    fast_documents(survivor).grant(ids["doc"], colleague.account.id)
    got = fast_documents(colleague).download(ids["doc"], tmp_path / "copy.pdf")
    assert got.path.read_bytes() == b"passport scan"
    events = colleague.get(f"/cases/{case_id}/events")["events"]
    assert "member_request" not in [e["kind"] for e in events]
    assert "member_add" in [e["kind"] for e in events]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_declined_request_leaves_only_the_survivors_history(
    scene: tuple[HavenClient, HavenClient, HavenClient, str, dict[str, str]],
    app: Flask,
) -> None:
    survivor, counsel, colleague, case_id, ids = scene
    assert colleague.account is not None and survivor.account is not None
    before = row_counts(app)
    counsel.request_counsel(case_id, colleague.account.username)
    (pending,) = survivor.member_requests(case_id)
    survivor.decline_member(case_id, pending["id"])
    after = row_counts(app)
    changed = {t for t in after if after[t] != before[t]}
    assert changed == {"events", "audit_log"}
    assert after["events"] == before["events"] + 2
    assert _sees_the_case(colleague, case_id, ids) == STRANGER
    assert survivor.member_requests(case_id) == []
    events = survivor.get(f"/cases/{case_id}/events")["events"]
    assert [e["kind"] for e in events[:2]] == ["member_decline", "member_request"]
    assert events[0]["actor_id"] == survivor.account.id
    assert {e["subject_id"] for e in events[:2]} == {colleague.account.id}
    # Answered requests cannot be answered again.
    for verb in ("approve", "decline"):
        with pytest.raises(ApiError) as err:
            survivor.post(f"/cases/{case_id}/member-requests/{pending['id']}/{verb}")
        assert err.value.status == 404
    # The counsel may ask again; the survivor then sees a new request.
    counsel.request_counsel(case_id, colleague.account.username)
    assert len(survivor.member_requests(case_id)) == 1


def _person(app: Flask, role: Role, name: str, invited_by: str | None = None) -> Any:
    with app.app_context():
        db = database(app).sessions()
        try:
            return make_person(db, app.extensions["haven.keyring"], role, name, invited_by)
        finally:
            db.close()


def _disable(app: Flask, user_id: str) -> None:
    with app.app_context():
        db = database(app).sessions()
        try:
            user = db.get(User, user_id)
            assert user is not None
            user.is_disabled = True
            db.commit()
        finally:
            db.close()


def test_the_request_answers_every_username_alike(app: Flask) -> None:
    world = build_world(app)
    p = world.people
    real = _person(app, Role.COUNSEL, "counsel.real")
    disabled = _person(app, Role.COUNSEL, "counsel.gone")
    _disable(app, disabled.id)
    client = app.test_client()
    session_cookie_for(app, client, p["counsel"].id)
    path = f"/api/v1/cases/{world.case_id}/members"

    def ask(username: str) -> tuple[int, Any, dict[str, int]]:
        before = row_counts(app)
        answer = client.post(path, json={"username": username})
        after = row_counts(app)
        grew = {t: after[t] - before[t] for t in after if after[t] != before[t]}
        return answer.status_code, answer.get_json(), grew

    names = {
        "unknown": "nobody.here",
        "survivor": p["survivor"].username,
        "stranger survivor": p["stranger_survivor"].username,
        "admin": p["admin"].username,
        "disabled counsel": disabled.username,
        "member counsel": p["counsel"].username,
        "real counsel": real.username,
        "real counsel again": real.username,
    }
    answers = {label: ask(name) for label, name in names.items()}
    shapes = {(status, str(body)) for status, body, _ in answers.values()}
    assert shapes == {(202, str({"status": "recorded"}))}
    # Only the real counsel's first request stored anything.
    stored = {label for label, (_, _, grew) in answers.items() if grew}
    assert stored == {"real counsel"}
    assert answers["real counsel"][2]["case_member_requests"] == 1
    # And the asking counsel's own view of the case is the same whatever they asked.
    seen = client.get(f"/api/v1/cases/{world.case_id}").get_json()
    assert {m["user_id"] for m in seen["case"]["members"]} == {
        p["survivor"].id,
        p["counsel"].id,
    }


def test_requests_are_rate_limited_per_account(make_app: Callable[..., Flask]) -> None:
    app = make_app(HAVEN_LIMIT_MEMBER_REQUEST="3/minute")
    world = build_world(app)
    client = app.test_client()
    session_cookie_for(app, client, world.people["counsel"].id)
    path = f"/api/v1/cases/{world.case_id}/members"
    statuses = [client.post(path, json={"username": f"name{i}.x"}).status_code for i in range(3)]
    assert statuses == [202, 202, 202]
    refused = client.post(path, json={"username": "name9.x"})
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    # Another counsel's budget is their own.
    other = app.test_client()
    session_cookie_for(app, other, world.people["stranger_counsel"].id)
    answer = other.post(
        f"/api/v1/cases/{world.stranger_case_id}/members", json={"username": "a.b.c"}
    )
    assert answer.status_code == 202


def _request_id(app: Flask, world: World, survivor: Any) -> str:
    client = app.test_client()
    session_cookie_for(app, client, survivor.id)
    requests_ = client.get(f"/api/v1/cases/{world.case_id}/member-requests").get_json()
    return str(requests_["requests"][0]["id"])


def test_answering_refuses_other_cases_requests_and_unknown_ids(app: Flask) -> None:
    world = build_world(app)
    p = world.people
    extra = _person(app, Role.COUNSEL, "counsel.extra")
    asker = app.test_client()
    session_cookie_for(app, asker, p["counsel"].id)
    asker.post(f"/api/v1/cases/{world.case_id}/members", json={"username": extra.username})
    request_id = _request_id(app, world, p["survivor"])
    other = app.test_client()
    session_cookie_for(app, other, p["stranger_survivor"].id)
    before = row_counts(app)
    for verb in ("approve", "decline"):
        mine = f"/api/v1/cases/{world.stranger_case_id}/member-requests/{request_id}/{verb}"
        theirs = f"/api/v1/cases/{world.case_id}/member-requests/{request_id}/{verb}"
        for path in (mine, theirs, mine.replace(request_id, "nope")):
            answer = other.post(path, json={})
            assert answer.status_code == 404, path
            assert answer.get_json()["error"]["code"] == "not_found"
    assert row_counts(app) == before


def test_a_disabled_counsel_cannot_be_approved(app: Flask) -> None:
    world = build_world(app)
    p = world.people
    extra = _person(app, Role.COUNSEL, "counsel.later")
    asker = app.test_client()
    session_cookie_for(app, asker, p["counsel"].id)
    asker.post(f"/api/v1/cases/{world.case_id}/members", json={"username": extra.username})
    request_id = _request_id(app, world, p["survivor"])
    _disable(app, extra.id)
    client = app.test_client()
    session_cookie_for(app, client, p["survivor"].id)
    before = row_counts(app)
    path = f"/api/v1/cases/{world.case_id}/member-requests/{request_id}/approve"
    answer = client.post(path, json={})
    assert answer.status_code == 409
    assert answer.get_json()["error"]["code"] == "counsel_disabled"
    assert row_counts(app) == before


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_event_ids_count_each_cases_events_alone(app: Flask) -> None:
    world = build_world(app)
    p = world.people
    names = [_person(app, Role.COUNSEL, f"counsel.n{i}").username for i in range(3)]
    mine = app.test_client()
    session_cookie_for(app, mine, p["counsel"].id)
    theirs = app.test_client()
    session_cookie_for(app, theirs, p["stranger_counsel"].id)
    # Interleave activity in the two cases.
    for name in names:
        mine.post(f"/api/v1/cases/{world.case_id}/members", json={"username": name})
        theirs.post(f"/api/v1/cases/{world.stranger_case_id}/members", json={"username": name})
        theirs.post(f"/api/v1/cases/{world.stranger_case_id}/members", json={"username": "x.y.z"})

    def ids(survivor: Any, case_id: str, query: str = "") -> list[int]:
        client = app.test_client()
        session_cookie_for(app, client, survivor.id)
        events = client.get(f"/api/v1/cases/{case_id}/events{query}").get_json()["events"]
        return [e["id"] for e in events]

    assert ids(p["survivor"], world.case_id) == [3, 2, 1]
    assert ids(p["stranger_survivor"], world.stranger_case_id) == [3, 2, 1]
    # The cursor pages through one case's numbers.
    assert ids(p["survivor"], world.case_id, "?limit=2") == [3, 2]
    assert ids(p["survivor"], world.case_id, "?before=2") == [1]
    assert ids(p["survivor"], world.case_id, "?before=1") == []


def _cli(live_server: LiveServer, client: HavenClient, *args: str) -> Result:
    assert client.account is not None
    env = {
        "HAVEN_URL": live_server.url,
        "HAVEN_USERNAME": client.account.username,
        "HAVEN_PASSPHRASE": PASSPHRASE,
        "HAVEN_UNWITNESSED": "true",
    }
    # "--": a case id may start with "-" (base64url), and must not be read as an option.
    return CliRunner(env=env).invoke(main, ["case", args[0], "--", *args[1:]])


def test_the_cli_asks_lists_approves_and_declines(
    pair: Pair,  # noqa: F811
    create_account: Callable[..., tuple[HavenClient, str]],
    live_server: LiveServer,
) -> None:
    survivor, counsel, case_id = pair
    first, _ = create_account("counsel")
    second, _ = create_account("counsel")
    assert first.account is not None and second.account is not None
    for colleague in (first, second, survivor):
        assert colleague.account is not None
        asked = _cli(live_server, counsel, "add-counsel", case_id, colleague.account.username)
        assert asked.exit_code == 0, asked.output
        assert "Request recorded" in asked.output
    listed = _cli(live_server, survivor, "requests", case_id)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.strip().splitlines()
    assert [line.split()[1] for line in lines] == [
        first.account.username,
        second.account.username,
    ]
    ids = [line.split()[0] for line in lines]
    approved = _cli(live_server, survivor, "approve", case_id, ids[0])
    assert approved.exit_code == 0 and "Approved" in approved.output
    declined = _cli(live_server, survivor, "decline", case_id, ids[1])
    assert declined.exit_code == 0 and "Declined" in declined.output
    assert [c["id"] for c in first.cases()] == [case_id]
    assert second.cases() == []
    again = _cli(live_server, survivor, "approve", case_id, ids[1])
    assert again.exit_code != 0
    refused = _cli(live_server, counsel, "requests", case_id)
    assert refused.exit_code != 0
    removed = _cli(live_server, survivor, "remove", case_id, first.account.username)
    assert removed.exit_code == 0, removed.output
    assert first.cases() == []


def test_the_survivor_removes_a_counsel_who_loses_the_case_and_every_grant(
    scene: tuple[HavenClient, HavenClient, HavenClient, str, dict[str, str]],
) -> None:
    survivor, counsel, colleague, case_id, ids = scene
    assert colleague.account is not None and counsel.account is not None
    counsel.request_counsel(case_id, colleague.account.username)
    (pending,) = survivor.member_requests(case_id)
    survivor.approve_member(case_id, pending["id"])
    fast_documents(survivor).grant(ids["doc"], colleague.account.id)
    assert colleague.get(f"/documents/{ids['doc']}")["document"]["id"] == ids["doc"]
    # Only the survivor may remove, and only counsel of the case.
    with pytest.raises(ApiError) as err:
        counsel.request("DELETE", f"/cases/{case_id}/members/{colleague.account.id}")
    assert err.value.status == 403
    for who in (ids["survivor"], "nobody"):
        with pytest.raises(ApiError) as err:
            survivor.request("DELETE", f"/cases/{case_id}/members/{who}")
        assert err.value.status == 404

    survivor.remove_counsel(case_id, colleague.account.id)
    assert _sees_the_case(colleague, case_id, ids) == STRANGER
    events = survivor.get(f"/cases/{case_id}/events")["events"]
    assert [e["kind"] for e in events[:2]] == ["member_remove", "revoke"]
    assert {e["subject_id"] for e in events[:2]} == {colleague.account.id}
    # Let in again, they do not get the old grant back.
    counsel.request_counsel(case_id, colleague.account.username)
    (again,) = survivor.member_requests(case_id)
    survivor.approve_member(case_id, again["id"])
    assert colleague.get(f"/cases/{case_id}/documents")["documents"] == []
    # The first counsel keeps their grant.
    assert counsel.get(f"/documents/{ids['doc']}")["document"]["id"] == ids["doc"]
