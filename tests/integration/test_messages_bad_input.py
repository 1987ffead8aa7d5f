"""Bad and hostile envelopes: each a 4xx in the one error shape, and no row changes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.authz import World, build_world
from tests.factories import Person, row_counts, session_cookie_for
from tests.integration.messages_fixtures import (
    envelope_body,
    make_envelope,
    open_conversation,
    rotate_keys,
)
from vault.client.messages import parse_envelope
from vault.protocol import messages as pmsg
from vault.protocol.encoding import b64encode

B = b64encode


@pytest.fixture
def world(app: Flask) -> World:
    """Survivor + counsel, their conversation in ``extra['cid']``, and strangers."""
    built = build_world(app)
    p = built.people
    built.extra["cid"] = open_conversation(app, p["survivor"], built.case_id, [p["counsel"]])
    # A second conversation with the same two people, to replay into.
    built.extra["cid2"] = open_conversation(app, p["counsel"], built.case_id, [p["survivor"]])
    return built


def post(app: Flask, world: World, actor: str, cid: str, body: Any, **kw: Any) -> Any:
    client = app.test_client()
    session_cookie_for(app, client, world.people[actor].id)
    return client.post(f"/api/v1/conversations/{cid}/messages", json=body, **kw)


def valid(world: World, sender: str = "survivor", **kw: Any) -> dict[str, Any]:
    p = world.people
    envelope = make_envelope(p[sender], world.extra["cid"], [p["survivor"], p["counsel"]], **kw)
    return envelope_body(envelope)


def assert_refused(
    app: Flask, response: Any, status: int, code: str, before: dict[str, int]
) -> None:
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert set(error) == {"code", "message"}
    assert error["code"] == code, error
    assert row_counts(app) == before


def _resign(world: World, body: dict[str, Any], signer: Person | None = None) -> dict[str, Any]:
    """Re-sign a mutated envelope, so the mutation and not the signature is what is wrong."""
    env = parse_envelope(body)
    signer = signer or world.people["survivor"]
    return envelope_body(pmsg.sign(env.header, env.body, env.sealed_keys, signer.keys))


Mutation = Callable[[World, dict[str, Any]], dict[str, Any]]


def _drop_counsel(world: World, body: dict[str, Any]) -> dict[str, Any]:
    counsel = world.people["counsel"].id
    body["recipients"] = [r for r in body["recipients"] if r["user_id"] != counsel]
    return _resign(world, body)


def _add_stranger(world: World, body: dict[str, Any]) -> dict[str, Any]:
    p = world.people
    env = make_envelope(
        p["survivor"], world.extra["cid"], [p["counsel"], p["stranger_counsel"]], "hi"
    )
    return envelope_body(env)


def _unsorted(world: World, body: dict[str, Any]) -> dict[str, Any]:
    body["recipients"].reverse()
    body["signature"] = B(os.urandom(64))
    return body


def _set(path: str, value: Any) -> Mutation:
    def mutate(world: World, body: dict[str, Any]) -> dict[str, Any]:
        target = body
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is _DELETE:
            del target[parts[-1]]
        else:
            target[parts[-1]] = value(world) if callable(value) else value
        return body

    return mutate


_DELETE = object()

MUTATIONS: list[tuple[str, Mutation, int, str]] = [
    ("recipient set missing a member", _drop_counsel, 400, "recipients_mismatch"),
    ("recipient set naming a stranger", _add_stranger, 400, "recipients_mismatch"),
    ("recipients not in canonical order", _unsorted, 400, "invalid_envelope"),
    ("random signature", _set("signature", B(os.urandom(64))), 400, "bad_signature"),
    ("tampered body", _set("body", B(b"\x01" + os.urandom(296))), 400, "bad_signature"),
    (
        "sent far in the future",
        _set("sent_at", int(time.time() * 1000) + 86400_000),
        400,
        "clock_skew",
    ),
    ("sent long ago", _set("sent_at", 1_000), 400, "clock_skew"),
    ("unknown timer", _set("ttl", 5), 400, "invalid_envelope"),
    ("wrong timer", _set("ttl", 3600), 409, "timer_changed"),
    ("sender key version unlike own copy", _set("sender_key_version", 2), 400, "invalid_envelope"),
    ("unknown attachment", _set("attachments", ["doc1"]), 400, "unknown_attachment"),
    ("bad base64", _set("body", "not*base64"), 400, "invalid_field"),
    ("padded base64", _set("signature", B(os.urandom(64)) + "=="), 400, "invalid_field"),
    ("short sealed key", _set("recipients.0.sealed_key", B(os.urandom(80))), 400, "invalid_field"),
    ("short message id", _set("id", B(os.urandom(15))), 400, "invalid_field"),
    ("string key version", _set("sender_key_version", "1"), 400, "invalid_field"),
    ("unknown field", _set("extra", 1), 400, "invalid_field"),
    ("missing field", _set("signature", _DELETE), 400, "invalid_field"),
    (
        "too many recipients",
        _set(
            "recipients", [{"user_id": "x", "key_version": 1, "sealed_key": B(os.urandom(81))}] * 33
        ),
        400,
        "invalid_field",
    ),
    ("empty body", _set("body", ""), 400, "invalid_envelope"),
]

NEEDS_RESIGN = {"sent far in the future", "sent long ago", "wrong timer", "unknown attachment"}


@pytest.mark.parametrize(
    ("name", "mutate", "status", "code"), MUTATIONS, ids=[m[0] for m in MUTATIONS]
)
def test_bad_envelopes_are_refused_and_nothing_is_stored(
    app: Flask, world: World, name: str, mutate: Mutation, status: int, code: str
) -> None:
    body = mutate(world, valid(world))
    if name in NEEDS_RESIGN:
        body = _resign(world, body)
    before = row_counts(app)
    response = post(app, world, "survivor", world.extra["cid"], body)
    assert_refused(app, response, status, code, before)


def test_envelope_replayed_into_another_conversation_is_refused(app: Flask, world: World) -> None:
    body = valid(world)
    before = row_counts(app)
    # As is: the header names the first conversation.
    response = post(app, world, "survivor", world.extra["cid2"], body)
    assert_refused(app, response, 400, "conversation_mismatch", before)
    # With the JSON edited to name the second: the signature no longer verifies.
    body["conversation_id"] = world.extra["cid2"]
    response = post(app, world, "survivor", world.extra["cid2"], body)
    assert_refused(app, response, 400, "bad_signature", before)
    # Replayed by the other member into the second conversation: refused the same way.
    response = post(app, world, "counsel", world.extra["cid2"], body)
    assert_refused(app, response, 403, "sender_mismatch", before)


def test_forged_sender_is_refused(app: Flask, world: World) -> None:
    before = row_counts(app)
    # Counsel posts an envelope that claims the survivor sent it.
    survivor_claim = valid(world, "survivor")
    response = post(app, world, "counsel", world.extra["cid"], survivor_claim)
    assert_refused(app, response, 403, "sender_mismatch", before)
    # Counsel names themselves but signs with a key that is not their published one.
    p = world.people
    forged = make_envelope(p["counsel"], world.extra["cid"], [p["survivor"]])
    impostor = Person(p["counsel"].id, "x", "counsel", p["survivor"].keys, p["survivor"].public)
    body = _resign(world, envelope_body(forged), signer=impostor)
    response = post(app, world, "counsel", world.extra["cid"], body)
    assert_refused(app, response, 400, "bad_signature", before)


def test_stale_recipient_and_sender_key_versions_are_refused(app: Flask, world: World) -> None:
    p = world.people
    old_counsel = p["counsel"]
    new_counsel = rotate_keys(app, old_counsel)
    before = row_counts(app)
    stale = make_envelope(p["survivor"], world.extra["cid"], [old_counsel])
    response = post(app, world, "survivor", world.extra["cid"], envelope_body(stale))
    assert_refused(app, response, 409, "stale_key_version", before)
    # The rotated account itself signing with its old version.
    old_sender = make_envelope(old_counsel, world.extra["cid"], [p["survivor"]])
    response = post(app, world, "counsel", world.extra["cid"], envelope_body(old_sender))
    assert_refused(app, response, 409, "stale_key_version", before)
    fresh = make_envelope(p["survivor"], world.extra["cid"], [new_counsel])
    response = post(app, world, "survivor", world.extra["cid"], envelope_body(fresh))
    assert response.status_code == 201


@pytest.mark.parametrize("actor", ["stranger_counsel", "stranger_survivor"])
def test_strangers_cannot_inject(app: Flask, world: World, actor: str) -> None:
    p = world.people
    before = row_counts(app)
    own = make_envelope(p[actor], world.extra["cid"], [p["survivor"], p["counsel"]])
    response = post(app, world, actor, world.extra["cid"], envelope_body(own))
    assert_refused(app, response, 404, "not_found", before)
    response = post(app, world, actor, world.extra["cid"], valid(world))
    assert_refused(app, response, 404, "not_found", before)


def test_not_json_is_refused(app: Flask, world: World) -> None:
    before = row_counts(app)
    client = app.test_client()
    session_cookie_for(app, client, world.people["survivor"].id)
    url = f"/api/v1/conversations/{world.extra['cid']}/messages"
    response = client.post(url, data=b"{", content_type="application/json")
    assert_refused(app, response, 400, "malformed_json", before)
    response = client.post(url, data=b"x", content_type="text/plain")
    assert_refused(app, response, 415, "unsupported_media_type", before)


def test_request_over_the_json_limit_is_refused(app: Flask, world: World) -> None:
    before = row_counts(app)
    body = valid(world)
    body["body"] = B(os.urandom(300 * 1024))
    response = post(app, world, "survivor", world.extra["cid"], body)
    assert_refused(app, response, 413, "request_entity_too_large", before)


def test_conversation_creation_by_a_stranger_is_not_found(app: Flask) -> None:
    world = build_world(app)
    before = row_counts(app)
    client = app.test_client()
    session_cookie_for(app, client, world.people["stranger_counsel"].id)
    response = client.post(
        f"/api/v1/cases/{world.case_id}/conversations",
        json={"members": [world.people["survivor"].id]},
    )
    assert_refused(app, response, 404, "not_found", before)
