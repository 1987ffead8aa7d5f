"""Outside links (protocol §23) over real HTTP with PostgreSQL and MinIO, driven by the
Python client: opens counted, history, consent, indistinguishable refusals, no leaks."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from tests.authz import World, build_world
from tests.conftest import PASSPHRASE, LiveServer
from tests.integration.documents_fixtures import (
    fast_documents,
    make_document,
    pair,
    signed_in,
    write_random_file,
)
from tests.integration.links_fixtures import link_body, make_link
from tests.leaks import assert_stored_nowhere, dump_database
from tests.services import MinioServer
from vault import clock
from vault.cli import main
from vault.client import ApiError, HavenClient
from vault.client.links import LinkRefused, Links, open_link
from vault.db import database
from vault.links.models import Link
from vault.protocol import documents as pdoc
from vault.protocol import links as plink
from vault.protocol.encoding import b64encode

__all__ = ["pair"]

LINK_PASSPHRASE = "river stones at dawn 1987"
Pair = tuple[HavenClient, HavenClient, str]
JSON = "application/json"


def _recipient(live_server: LiveServer) -> HavenClient:
    """A fresh client with no account, as the recipient's."""
    return HavenClient(live_server.url, witnesses=live_server.witnesses)


def test_link_with_passphrase_opens_twice_verified_then_refuses_and_leaks_nothing(
    pair: Pair,
    app: Flask,
    live_server: LiveServer,
    minio: MinioServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    survivor, _, case_id = pair
    docs = fast_documents(survivor)
    names = ["passport-amira-khalil.pdf", "protective-order-2026.pdf"]
    uploaded = []
    for i, name in enumerate(names):
        source = tmp_path / name
        write_random_file(source, 70_000 + i, seed=name.encode())
        uploaded.append(docs.upload(case_id, source, doc_type="passport"))
    links = Links(survivor)
    made = links.create(
        case_id,
        [u.id for u in uploaded],
        "Ms. Ortiz, victim-witness unit",
        clock.now() + timedelta(days=3),
        2,
        LINK_PASSPHRASE,
    )
    assert made.link["state"] == "active" and made.link["has_passphrase"] is True
    secret = plink.parse_link_url(made.url)
    lookup = b64encode(plink.lookup_id(secret))

    # A wrong passphrase fails in the recipient's client and costs no open.
    with pytest.raises(LinkRefused, match="wrong passphrase"):
        open_link(_recipient(live_server), made.url, tmp_path, "not the passphrase at all")
    assert links.list(case_id)[0]["opens"] == 0

    for number in (1, 2):
        out = tmp_path / f"open{number}"
        out.mkdir()
        opened = open_link(_recipient(live_server), made.url, out, LINK_PASSPHRASE)
        assert opened.number == number
        assert [f.name for f in opened.files] == names
        for got, doc in zip(opened.files, uploaded, strict=True):
            assert got.path.read_bytes() == (tmp_path / doc.info.name).read_bytes()
            assert got.sha256 == doc.info.sha256.hex()
            assert got.uploader == survivor.account.username  # type: ignore[union-attr]

    # The third open is refused exactly like a link that never existed.
    with pytest.raises(LinkRefused):
        open_link(_recipient(live_server), made.url, tmp_path, LINK_PASSPHRASE)
    unknown = b64encode(plink.lookup_id(plink.generate_secret()))
    http = _recipient(live_server).http
    exhausted = http.get(f"{live_server.url}/api/v1/link/{lookup}")
    never = http.get(f"{live_server.url}/api/v1/link/{unknown}")
    assert (exhausted.status_code, exhausted.content) == (never.status_code, never.content)
    assert exhausted.status_code == 404

    listed = links.list(case_id)
    assert [(x["recipient"], x["state"], x["opens"]) for x in listed] == [
        ("Ms. Ortiz, victim-witness unit", "exhausted", 2)
    ]
    opens = [e for e in docs.events(case_id) if e["kind"] == "link_open"]
    assert len(opens) == 4
    assert {e["subject_id"] for e in opens} == {made.link["id"]}
    assert {e["document_id"] for e in opens} == {u.id for u in uploaded}
    assert all(e["actor_id"] is None for e in opens)

    # Leak search: database, object files, server log.
    needles = {
        "secret": secret,
        "secret (b64)": b64encode(secret).encode(),
        "link passphrase": LINK_PASSPHRASE.encode(),
        "recipient": b"Ortiz",
    }
    for doc in uploaded:
        needles[f"name {doc.info.name}"] = doc.info.name.encode()
        needles[f"file key of {doc.id}"] = doc.file_key
        needles[f"file key (b64) of {doc.id}"] = b64encode(doc.file_key).encode()
        needles[f"plaintext of {doc.id}"] = (tmp_path / doc.info.name).read_bytes()[1000:1256]
    dump = dump_database(app)
    assert plink.lookup_id(secret) in dump  # the dump is not vacuous
    assert_stored_nowhere(app, minio, caplog.records, needles)


@pytest.fixture
def world(app: Flask) -> World:
    """Accounts and cases (see tests/authz.py)."""
    return build_world(app)


def _answers(app: Flask, lookup: str, token: bytes, doc_id: str) -> Iterator[tuple[int, bytes]]:
    """Status and body of the three recipient routes for a link."""
    client = app.test_client()
    got = client.get(f"/api/v1/link/{lookup}")
    yield got.status_code, got.data
    opened = client.post(f"/api/v1/link/{lookup}/open", json={"token": b64encode(token)})
    yield opened.status_code, opened.data
    content = client.get(
        f"/api/v1/link/{lookup}/documents/{doc_id}/content",
        headers={"Haven-Link-Ticket": b64encode(bytes(32))},
    )
    yield content.status_code, content.data


def test_expired_revoked_exhausted_pending_and_wrong_token_answer_as_unknown(
    app: Flask, world: World
) -> None:
    survivor, counsel = world.people["survivor"], world.people["counsel"]
    doc = make_document(app, survivor, world.case_id, readers=(counsel,))
    unknown = plink.generate_secret()
    never = list(_answers(app, b64encode(plink.lookup_id(unknown)), bytes(32), doc.id))
    assert [status for status, _ in never] == [404, 404, 404]

    revoked = make_link(app, survivor, world.case_id, [doc])
    gone = signed_in(app, survivor).delete(f"/api/v1/links/{revoked.id}", content_type=JSON)
    assert gone.status_code == 204
    exhausted = make_link(app, survivor, world.case_id, [doc], max_opens=1)
    first = app.test_client().post(
        f"/api/v1/link/{exhausted.lookup}/open", json={"token": b64encode(exhausted.token)}
    )
    assert first.status_code == 200
    pending = make_link(app, counsel, world.case_id, [doc], survivor=survivor)
    assert pending.state == "pending"
    live = make_link(app, survivor, world.case_id, [doc])
    expiring = make_link(app, survivor, world.case_id, [doc])

    for handle in (revoked, exhausted, pending):
        assert list(_answers(app, handle.lookup, handle.token, doc.id)) == never
    # A wrong token is refused like an unknown link, and counts nothing.
    assert list(_answers(app, live.lookup, bytes(32), doc.id))[1:] == never[1:]
    clock.jump(8 * 24 * 3600)
    try:
        assert list(_answers(app, expiring.lookup, expiring.token, doc.id)) == never
    finally:
        clock.jump(-8 * 24 * 3600)
    rows = database(app).sessions()
    try:
        assert rows.get(Link, live.id).opens == 0  # type: ignore[union-attr]
        assert rows.get(Link, revoked.id).envelope is None  # type: ignore[union-attr]
    finally:
        rows.close()


def test_counsel_needs_the_survivors_approval_and_revoke_stops_content_at_once(
    app: Flask, world: World
) -> None:
    survivor, counsel = world.people["survivor"], world.people["counsel"]
    doc = make_document(app, survivor, world.case_id, b"x" * 70_000, readers=(counsel,))
    as_counsel, as_survivor = signed_in(app, counsel), signed_in(app, survivor)

    # Without the survivor's sealed label, counsel cannot even ask.
    body, _ = link_body(counsel, world.case_id, [doc])
    refused = as_counsel.post(f"/api/v1/cases/{world.case_id}/links", json=body)
    assert refused.status_code == 400
    # A survivor cannot link counsel's document, even one shared with her.
    theirs = make_document(app, counsel, world.case_id, readers=(survivor,))
    body, _ = link_body(survivor, world.case_id, [theirs])
    refused = as_survivor.post(f"/api/v1/cases/{world.case_id}/links", json=body)
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (403, "not_owner")

    pending = make_link(app, counsel, world.case_id, [doc], survivor=survivor)
    recipient = app.test_client()
    assert recipient.get(f"/api/v1/link/{pending.lookup}").status_code == 404
    assert (
        as_counsel.post(f"/api/v1/links/{pending.id}/approve", content_type=JSON).status_code == 403
    )
    listed = as_survivor.get(f"/api/v1/cases/{world.case_id}/links").get_json()["links"]
    assert [(x["id"], x["state"]) for x in listed] == [(pending.id, "pending")]
    approved = as_survivor.post(f"/api/v1/links/{pending.id}/approve", content_type=JSON)
    assert approved.status_code == 200 and approved.get_json()["link"]["state"] == "active"
    assert recipient.get(f"/api/v1/link/{pending.lookup}").status_code == 200

    opened = recipient.post(
        f"/api/v1/link/{pending.lookup}/open", json={"token": b64encode(pending.token)}
    )
    assert opened.status_code == 200
    ticket = opened.get_json()["open"]["ticket"]
    path = f"/api/v1/link/{pending.lookup}/documents/{doc.id}/content"
    got = recipient.get(path, headers={"Haven-Link-Ticket": ticket})
    assert got.status_code == 200 and got.data == doc.ciphertext
    assert as_counsel.delete(f"/api/v1/links/{pending.id}", content_type=JSON).status_code == 204
    assert recipient.get(path, headers={"Haven-Link-Ticket": ticket}).status_code == 404


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"max_opens": 0}, "invalid_field"),
        ({"max_opens": 101}, "invalid_field"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "invalid_field"),
        ({"expires_at": "2030-01-01T00:00:00"}, "invalid_field"),
        ({"document_ids": []}, "invalid_field"),
        ({"lookup_id": "AAAA"}, "invalid_field"),
        ({"label": b64encode(bytes(181))}, "invalid_field"),
        ({"survivor_label": b64encode(bytes(181))}, "invalid_field"),
        (
            {
                "kdf": {
                    "alg": "argon2id13",
                    "salt": b64encode(bytes(16)),
                    "opslimit": 2,
                    "memlimit": 67108864,
                }
            },
            "invalid_field",
        ),
        ({"extra": 1}, "invalid_field"),
    ],
)
def test_bad_link_bodies_are_refused_and_change_nothing(
    app: Flask, world: World, change: dict[str, object], code: str
) -> None:
    survivor = world.people["survivor"]
    doc = make_document(app, survivor, world.case_id)
    body, _ = link_body(survivor, world.case_id, [doc])
    body.update(change)
    answer = signed_in(app, survivor).post(f"/api/v1/cases/{world.case_id}/links", json=body)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["error"]["code"] == code
    rows = database(app).sessions()
    try:
        assert rows.query(Link).count() == 0
    finally:
        rows.close()


def test_revoked_link_no_longer_opens_nor_can_be_approved(
    pair: Pair, live_server: LiveServer, tmp_path: Path
) -> None:
    survivor, _, case_id = pair
    source = tmp_path / "visa.pdf"
    write_random_file(source, 1000)
    doc = fast_documents(survivor).upload(case_id, source, doc_type="visa_permit")
    made = Links(survivor).create(
        case_id, [doc.id], "Shelter intake", clock.now() + timedelta(days=1), 1
    )
    Links(survivor).revoke(made.link["id"])
    assert Links(survivor).list(case_id)[0]["state"] == "revoked"
    with pytest.raises(LinkRefused):
        open_link(_recipient(live_server), made.url, tmp_path)
    with pytest.raises(ApiError):
        Links(survivor).approve(made.link["id"])


def test_recipient_routes_are_rate_limited_per_link_and_per_address(
    make_app: Callable[..., Flask],
) -> None:
    def lookups(app: Flask, count: int) -> list[int]:
        client = app.test_client()
        return [
            client.get(
                f"/api/v1/link/{b64encode(plink.lookup_id(plink.generate_secret()))}"
            ).status_code
            for _ in range(count)
        ]

    app = make_app(HAVEN_LIMIT_LINK="3/minute")
    client = app.test_client()
    lookup = b64encode(plink.lookup_id(plink.generate_secret()))
    answers = [client.get(f"/api/v1/link/{lookup}").status_code for _ in range(3)]
    assert answers == [404, 404, 404]
    # Looking up and opening share one budget per link: the open is refused now.
    limited = client.post(f"/api/v1/link/{lookup}/open", json={"token": b64encode(bytes(32))})
    assert (limited.status_code, limited.get_json()["error"]["code"]) == (429, "rate_limited")
    assert lookups(app, 3) == [404, 404, 404]  # other links from this address still answer
    # Per address: many different links from one address run out too.
    assert lookups(make_app(HAVEN_LIMIT_LINK_IP="2/minute"), 3) == [404, 404, 429]


def test_haven_links_commands_create_list_open_and_refuse_the_spent_link(
    pair: Pair, live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    survivor, _, case_id = pair
    assert survivor.account is not None
    source = tmp_path / "birth certificate.pdf"
    write_random_file(source, 5000)
    # The uploading client chooses the id; one in 64 begins with "-" (first byte 0xF8-0xFB),
    # which the command line once took for an option: "No such option '-B'".
    monkeypatch.setattr(pdoc, "generate_document_id", lambda: bytes([0xF8]) + os.urandom(15))
    doc = fast_documents(survivor).upload(case_id, source, doc_type="birth_certificate")
    assert doc.id.startswith("-")
    env = {
        "HAVEN_URL": live_server.url,
        "HAVEN_UNWITNESSED": "true",
        "HAVEN_USERNAME": survivor.account.username,
        "HAVEN_PASSPHRASE": PASSPHRASE,
        "HAVEN_LINK_PASSPHRASE": LINK_PASSPHRASE,
    }
    runner = CliRunner(env=env)
    made = runner.invoke(
        main,
        ["links", "create", case_id, doc.id, "--recipient", "Shelter intake", "--with-passphrase"],
    )
    assert made.exit_code == 0, made.output
    url = made.output.strip().splitlines()[-1]
    assert url.startswith(f"{live_server.url}/app/#link=")
    listed = runner.invoke(main, ["links", "list", case_id])
    assert "Shelter intake" in listed.output and "0/1 opens" in listed.output
    out = tmp_path / "received"
    opened = runner.invoke(main, ["links", "open", url, "--out", str(out)])
    assert opened.exit_code == 0, opened.output
    assert "Every check passed" in opened.output
    assert (out / "birth certificate.pdf").read_bytes() == source.read_bytes()
    again = runner.invoke(main, ["links", "open", url, "--out", str(tmp_path / "again")])
    assert again.exit_code == 1
    assert "no longer opens" in again.output
    link_id = made.output.split("Link ", 1)[1].split(" ", 1)[0]
    approved = runner.invoke(main, ["links", "approve", link_id])
    assert approved.exit_code == 1 and "not waiting for approval" in approved.output
