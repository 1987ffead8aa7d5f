"""Safer defaults: new conversations disappear after a week (§9.12); the camera is allowed
to the web client's own pages only (§7.1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.authz import World, build_world
from tests.factories import session_cookie_for
from tests.integration.messages_fixtures import envelope_body, make_envelope
from vault.config import ConfigError, load_config
from vault.protocol import messages as pmsg

WEEK = 7 * 86400


def test_the_default_timer_is_one_week_and_only_an_allowed_timer_is_accepted() -> None:
    assert load_config({})["HAVEN_MESSAGE_DEFAULT_TIMER"] == WEEK == pmsg.TIMERS[3]
    assert load_config({"HAVEN_MESSAGE_DEFAULT_TIMER": "0"})["HAVEN_MESSAGE_DEFAULT_TIMER"] == 0
    for bad in ("5", "-1", "week", "604800.0"):
        with pytest.raises(ConfigError, match="HAVEN_MESSAGE_DEFAULT_TIMER"):
            load_config({"HAVEN_MESSAGE_DEFAULT_TIMER": bad})


def _signed_in(app: Flask, world: World, actor: str) -> Any:
    client = app.test_client()
    session_cookie_for(app, client, world.people[actor].id)
    return client


def test_a_new_conversation_starts_with_the_one_week_timer(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(HAVEN_MESSAGE_DEFAULT_TIMER=str(load_config({})["HAVEN_MESSAGE_DEFAULT_TIMER"]))
    world = build_world(app)
    p = world.people
    survivor = _signed_in(app, world, "survivor")
    made = survivor.post(
        f"/api/v1/cases/{world.case_id}/conversations", json={"members": [p["counsel"].id]}
    )
    assert made.status_code == 201, made.get_json()
    conversation = made.get_json()["conversation"]
    assert (conversation["ttl"], conversation["ttl_set_by"]) == (WEEK, None)
    cid = conversation["id"]
    members = [p["survivor"], p["counsel"]]

    # A message written for "off" is refused: the timer is the conversation's, not the client's.
    stale = make_envelope(p["survivor"], cid, members, "old timer", ttl=0)
    refused = survivor.post(f"/api/v1/conversations/{cid}/messages", json=envelope_body(stale))
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "timer_changed")
    fresh = make_envelope(p["survivor"], cid, members, "fades in a week", ttl=WEEK)
    sent = survivor.post(f"/api/v1/conversations/{cid}/messages", json=envelope_body(fresh))
    assert sent.status_code == 201, sent.get_json()
    assert sent.get_json()["message"]["expires_at"] is not None

    # Anyone may still turn it off; then it is theirs, not the default.
    off = _signed_in(app, world, "counsel").put(
        f"/api/v1/conversations/{cid}/timer", json={"seconds": 0}
    )
    assert off.status_code == 200
    assert off.get_json()["conversation"]["ttl"] == 0
    assert off.get_json()["conversation"]["ttl_set_by"] == p["counsel"].id


def test_only_the_web_client_may_ask_for_the_camera(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/app/")
    api = client.get("/api/v1/openapi.json")
    assert page.headers["Permissions-Policy"] == (
        "camera=(self), microphone=(), geolocation=(), interest-cohort=()"
    )
    assert api.headers["Permissions-Policy"] == (
        "camera=(), microphone=(), geolocation=(), interest-cohort=()"
    )
