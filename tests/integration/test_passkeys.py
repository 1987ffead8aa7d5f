"""Passkeys (protocol §21.8, §21.9) over real HTTP on PostgreSQL, answered by a software
authenticator: as second factor, as a way in of their own (PRF), and every bad answer."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from tests.conftest import PASSPHRASE, LiveServer
from tests.integration.documents_fixtures import fast_documents
from tests.integration.passkey_authenticator import SoftAuthenticator
from tests.integration.test_accounts import dump_database
from vault.client import ApiError, HavenClient
from vault.client.documents import Documents
from vault.client.factors import Factors, sign_in_with_passkey
from vault.protocol import passkeys as ppasskeys

Accounts = Callable[..., tuple[HavenClient, str]]


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app with the default policy: counsel and admins need a second factor."""
    return make_app(HAVEN_FACTOR_REQUIRE_STAFF="true")


def authenticator(live_server: LiveServer) -> SoftAuthenticator:
    """A software authenticator for the live server's origin."""
    return SoftAuthenticator(live_server.url, urlsplit(live_server.url).hostname or "")


def held(live_server: LiveServer, username: str) -> HavenClient:
    """A new device whose sign-in waits for its second factor."""
    device = HavenClient(live_server.url, witnesses=live_server.witnesses)
    with pytest.raises(ApiError) as waiting:
        device.login(username, PASSPHRASE)
    assert waiting.value.code == "factor_required"
    return device


def answer(device: HavenClient, auth: SoftAuthenticator, **kwargs: Any) -> Any:
    """Ask for passkey options for the held sign-in and answer them."""
    options = device.post("/auth/factor/passkey/options")["public_key"]
    return device.post("/auth/factor/passkey", {"credential": auth.get(options, **kwargs)})


def refused(call: Callable[[], Any]) -> tuple[int, str]:
    """The status and code of a refused call."""
    with pytest.raises(ApiError) as error:
        call()
    return error.value.status, error.value.code


def test_passkeys_as_second_factor_and_every_bad_answer(
    create_account: Accounts, live_server: LiveServer
) -> None:
    counsel, _ = create_account("counsel", username="lawyer")
    phone, key = authenticator(live_server), authenticator(live_server)
    first = Factors(counsel).add_passkey(phone.create, "phone")
    Factors(counsel).add_passkey(key.create, "key")
    counsel.post(f"/account/passkeys/{first}/name", {"name": "work phone"})
    listed = Factors(counsel).passkeys()
    assert [p["name"] for p in listed] == ["work phone", "key"]
    assert not any(p["can_unlock"] for p in listed)
    assert counsel.get("/account")["account"]["must_enrol_factor"] is False
    again = refused(lambda: Factors(counsel).add_passkey(phone.create, "same"))
    assert again == (409, "passkey_exists")

    other, _ = create_account("counsel", username="other")
    stranger = authenticator(live_server)
    Factors(other).add_passkey(stranger.create, "theirs")

    device = held(live_server, "lawyer")
    assert refused(lambda: answer(device, stranger)) == (401, "bad_passkey")
    assert refused(lambda: answer(device, phone, origin="https://haven.example.net")) == (
        401,
        "bad_passkey",
    )
    assert refused(lambda: answer(device, phone, user_verified=False)) == (401, "bad_passkey")
    assert refused(lambda: device.get("/account")) == (401, "unauthorized")
    signed_in = answer(device, phone)
    assert signed_in["account"]["username"] == "lawyer"
    assert device.get("/account")["account"]["username"] == "lawyer"
    kinds = [e["kind"] for e in device.get("/audit/mine")["entries"]]
    assert kinds.count("factor_enrolled") == 2 and "login_factor" in kinds
    assert "factor_failed" in kinds
    # A copy of the key answering with a counter that did not move forward.
    cloned = held(live_server, "lawyer")
    last = phone.counter
    assert refused(lambda: answer(cloned, phone, counter=last)) == (401, "passkey_cloned")
    assert answer(cloned, phone, counter=last + 5)["account"]["username"] == "lawyer"

    # A counsel keeps one factor at least: the second passkey goes, the last one stays.
    names = {p["name"]: p["id"] for p in Factors(device).passkeys()}
    Factors(device).remove_passkey(names["key"])
    assert refused(lambda: Factors(device).remove_passkey(names["work phone"])) == (
        409,
        "factor_required",
    )
    assert refused(lambda: Factors(other).remove_passkey(names["work phone"])) == (
        404,
        "not_found",
    )


def test_a_prf_passkey_alone_opens_the_account_until_removed(
    app: Flask, create_account: Accounts, live_server: LiveServer, tmp_path: Path
) -> None:
    counsel, _ = create_account("counsel", username="lawyer")
    survivor, _ = create_account("survivor", username="sofia", invited_by=counsel)
    case_id = survivor.cases()[0]["id"]
    fast_documents(survivor).upload(
        case_id, io.BytesIO(b"passport scan"), doc_type="passport", name="passport.pdf"
    )
    phone = authenticator(live_server)
    passkey_id = Factors(survivor).add_passkey(phone.create, "my phone")
    prf_output = phone.prf(ppasskeys.PRF_INPUT)
    Factors(survivor).set_unlock(passkey_id, prf_output)
    assert Factors(survivor).passkeys()[0]["can_unlock"] is True

    def get(options: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        return phone.get(options), phone.prf(ppasskeys.PRF_INPUT)

    device = HavenClient(live_server.url, witnesses=live_server.witnesses)
    assert refused(lambda: device.post("/auth/passkey", {"credential": {}})) == (
        401,
        "no_challenge",
    )
    account = sign_in_with_passkey(device, get)
    assert survivor.account is not None and account.keys == survivor.account.keys
    documents = Documents(device).case_documents(case_id).documents
    assert [d.info.name for d in documents] == ["passport.pdf"]
    Documents(device).download(documents[0].id, tmp_path / "passport.pdf")
    assert (tmp_path / "passport.pdf").read_bytes() == b"passport scan"

    dump = dump_database(app)
    assert prf_output not in dump
    assert ppasskeys.prf_wrap_key(prf_output) not in dump

    Factors(device).remove_passkey(passkey_id)
    later = HavenClient(live_server.url, witnesses=live_server.witnesses)
    assert refused(lambda: sign_in_with_passkey(later, get)) == (401, "bad_passkey")
    # With no factor left she signs in with her passphrase alone again.
    assert later.login("sofia", PASSPHRASE).username == "sofia"


def test_a_key_rotation_drops_the_prf_copy_but_keeps_the_passkey(
    create_account: Accounts, live_server: LiveServer
) -> None:
    survivor, _ = create_account("survivor", username="nadia")
    phone = authenticator(live_server)
    passkey_id = Factors(survivor).add_passkey(phone.create, "my phone")
    Factors(survivor).set_unlock(passkey_id, phone.prf(ppasskeys.PRF_INPUT))
    survivor.rotate_keys(PASSPHRASE)
    assert [p["can_unlock"] for p in Factors(survivor).passkeys()] == [False]

    def get(options: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        return phone.get(options), phone.prf(ppasskeys.PRF_INPUT)

    device = HavenClient(live_server.url, witnesses=live_server.witnesses)
    assert refused(lambda: sign_in_with_passkey(device, get)) == (401, "passkey_cannot_unlock")
    assert answer(held(live_server, "nadia"), phone)["account"]["username"] == "nadia"
