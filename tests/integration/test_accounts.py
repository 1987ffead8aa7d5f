"""Zero-knowledge accounts over real HTTP on PostgreSQL, driven by the Python client."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from flask import Flask

from tests.conftest import PASSPHRASE, LiveServer
from tests.leaks import dump_database
from vault.client import ApiError, HavenClient
from vault.client.api import invite_token
from vault.protocol import keys as pkeys
from vault.protocol.encoding import b64encode
from vault.protocol.kdf import KdfParams, WeakParameters, passphrase_keys, recovery_keys

NEW_PASSPHRASE = "a brand new passphrase 2026"


def test_second_device_recovers_identical_private_keys(
    create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    first, _ = create_account("counsel", username="amira")
    assert first.account is not None
    device2 = HavenClient(live_server.url, witnesses=live_server.witnesses)
    account = device2.login("amira", PASSPHRASE)
    assert account.keys == first.account.keys
    assert account.keys.x25519_secret == first.account.keys.x25519_secret
    assert account.keys.ed25519_seed == first.account.keys.ed25519_seed
    assert account.role == "counsel"


def test_wrong_passphrase_is_refused(
    create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    create_account("counsel", username="bashir")
    with pytest.raises(ApiError) as err:
        HavenClient(live_server.url, witnesses=live_server.witnesses).login(
            "bashir", "not the passphrase at all"
        )
    assert err.value.status == 401
    assert err.value.code == "bad_credentials"


def test_recovery_key_sets_new_passphrase_and_old_one_fails(
    create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    first, recovery = create_account("counsel", username="chen")
    assert first.account is not None
    original = first.account.keys
    other = HavenClient(live_server.url, witnesses=live_server.witnesses)
    recovered = other.recover("chen", recovery.lower(), NEW_PASSPHRASE)
    assert recovered.keys == original
    with pytest.raises(ApiError) as err:
        HavenClient(live_server.url, witnesses=live_server.witnesses).login("chen", PASSPHRASE)
    assert err.value.status == 401
    assert (
        HavenClient(live_server.url, witnesses=live_server.witnesses)
        .login("chen", NEW_PASSPHRASE)
        .keys
        == original
    )
    # Recovery ended the sessions that existed before it.
    with pytest.raises(ApiError) as err:
        first.get("/account")
    assert err.value.status == 401


def test_wrong_recovery_key_is_refused(
    create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    create_account("counsel", username="dara")
    wrong = pkeys.format_recovery_key(pkeys.generate_recovery_key())
    with pytest.raises(ApiError) as err:
        HavenClient(live_server.url, witnesses=live_server.witnesses).recover(
            "dara", wrong, NEW_PASSPHRASE
        )
    assert err.value.status == 401


def test_eleven_rapid_wrong_logins_are_throttled(
    create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    create_account("counsel", username="eli")
    wrong = b64encode(b"\x01" * 32)
    statuses = []
    for _ in range(11):
        r = requests.post(
            f"{live_server.url}/api/v1/auth/login",
            json={"username": "eli", "auth_key": wrong},
            timeout=30,
        )
        statuses.append(r.status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["error"]["code"] == "rate_limited"
    # The correct passphrase is throttled too while the account is locked out.
    with pytest.raises(ApiError) as err:
        HavenClient(live_server.url, witnesses=live_server.witnesses).login("eli", PASSPHRASE)
    assert err.value.status == 429


def test_database_holds_no_passphrase_subkey_or_private_key(
    app: Flask, create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    client, recovery = create_account("counsel", username="farah")
    assert client.account is not None
    prelogin = client.prelogin("farah")
    derived = passphrase_keys(PASSPHRASE, prelogin)
    rk = recovery_keys(pkeys.parse_recovery_key(recovery))
    keys = client.account.keys
    dump = dump_database(app)
    assert b"haven_template" not in dump  # the dump is of the test database itself
    assert len(dump) > 500
    secrets_ = {
        "passphrase": PASSPHRASE.encode(),
        "auth subkey": derived.auth_key,
        "wrap subkey": derived.wrap_key,
        "recovery key": pkeys.parse_recovery_key(recovery),
        "recovery auth subkey": rk.auth_key,
        "recovery wrap subkey": rk.wrap_key,
        "x25519 private key": keys.x25519_secret,
        "ed25519 seed": keys.ed25519_seed,
        "username": b"farah",
    }
    for name, secret in secrets_.items():
        assert secret not in dump, name
        assert b64encode(secret).encode() not in dump, name
        assert secret.hex().encode() not in dump, name
    # The public keys are there: the dump is not vacuous.
    assert client.account.public_keys.x25519 in dump


def test_logout_ends_every_session_of_the_account(
    create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    phone, _ = create_account("counsel", username="gita")
    laptop = HavenClient(live_server.url, witnesses=live_server.witnesses)
    laptop.login("gita", PASSPHRASE)
    assert laptop.get("/account")["account"]["username"] == "gita"
    stolen_cookies = dict(phone.http.cookies)
    phone.logout()
    for device in (phone, laptop):
        with pytest.raises(ApiError) as err:
            device.get("/account")
        assert err.value.status == 401
    replay = requests.get(f"{live_server.url}/api/v1/account", cookies=stolen_cookies, timeout=10)
    assert replay.status_code == 401


def test_passphrase_change_rewraps_and_ends_other_sessions(
    create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    phone, _ = create_account("counsel", username="hana")
    assert phone.account is not None
    keys = phone.account.keys
    laptop = HavenClient(live_server.url, witnesses=live_server.witnesses)
    laptop.login("hana", PASSPHRASE)
    phone.change_passphrase(PASSPHRASE, NEW_PASSPHRASE)
    with pytest.raises(ApiError) as err:
        laptop.get("/account")
    assert err.value.status == 401
    with pytest.raises(ApiError):
        HavenClient(live_server.url, witnesses=live_server.witnesses).login("hana", PASSPHRASE)
    assert (
        HavenClient(live_server.url, witnesses=live_server.witnesses)
        .login("hana", NEW_PASSPHRASE)
        .keys
        == keys
    )
    assert phone.get("/account")["account"]["username"] == "hana"


def test_prelogin_answers_unknown_names_like_known_ones(
    create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    create_account("counsel", username="ines")

    def ask(name: str) -> requests.Response:
        return requests.post(
            f"{live_server.url}/api/v1/auth/prelogin", json={"username": name}, timeout=10
        )

    known, unknown, unknown_again = ask("ines"), ask("nobody-here"), ask("nobody-here")
    assert known.status_code == unknown.status_code == 200
    assert set(known.json()["kdf"]) == set(unknown.json()["kdf"])
    assert unknown.json() == unknown_again.json()  # a stable decoy, not a fresh random salt
    assert known.json() != unknown.json()
    assert len(known.content) == len(unknown.content)


def test_client_refuses_weak_kdf_parameters() -> None:
    with pytest.raises(WeakParameters):
        KdfParams(b"\x00" * 16, opslimit=2).check()
    with pytest.raises(WeakParameters):
        KdfParams(b"\x00" * 16, memlimit=32 * 1024 * 1024).check()


def test_counsel_invite_opens_a_case_for_counsel_and_survivor(
    create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer
) -> None:
    counsel, _ = create_account("counsel", username="jalil")
    survivor, _ = create_account("survivor", username="kiri", invited_by=counsel)
    stranger, _ = create_account("counsel", username="lena")
    assert survivor.account is not None and counsel.account is not None
    [case] = survivor.cases()
    assert {(m["username"], m["role"]) for m in case["members"]} == {
        ("kiri", "survivor"),
        ("jalil", "counsel"),
    }
    assert [c["id"] for c in counsel.cases()] == [case["id"]]
    assert stranger.cases() == []
    with pytest.raises(ApiError) as err:
        stranger.get(f"/cases/{case['id']}")
    assert err.value.status == 404
    with pytest.raises(ApiError) as err:
        stranger.get(f"/users/{survivor.account.id}/keys")
    assert err.value.status == 404
    keys = counsel.get(f"/users/{survivor.account.id}/keys")
    assert keys["keys"][0]["x25519"] == b64encode(survivor.account.public_keys.x25519)


def test_invite_cannot_be_redeemed_twice(
    invite: Callable[..., str], live_server: LiveServer
) -> None:
    token = invite("counsel")
    HavenClient(live_server.url, witnesses=live_server.witnesses).register(
        token, "mona", PASSPHRASE
    )
    with pytest.raises(ApiError) as err:
        HavenClient(live_server.url, witnesses=live_server.witnesses).register(
            token, "nour", PASSPHRASE
        )
    assert err.value.status == 400
    assert err.value.code == "invite_invalid"
    assert invite_token(f"http://x/app/#invite={token}") == invite_token(token)


def test_survivor_cannot_invite(
    create_account: Callable[..., tuple[HavenClient, str]],
) -> None:
    counsel, _ = create_account("counsel")
    survivor, _ = create_account("survivor", invited_by=counsel)
    with pytest.raises(ApiError) as err:
        survivor.create_invite("survivor")
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        counsel.create_invite("admin")
    assert err.value.status == 403
