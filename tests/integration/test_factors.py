"""Second factors (protocol §21) over real HTTP on PostgreSQL: TOTP, recovery codes, policy."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pyotp
import pytest
import requests
from click.testing import CliRunner
from flask import Flask

from tests.conftest import PASSPHRASE, LiveServer
from tests.integration.test_accounts import dump_database
from tests.integration.test_duress import raw_login, shape
from vault import clock
from vault.accounts.factors import TOTP_PERIOD
from vault.admin import services as admin
from vault.cli import main
from vault.client import ApiError, HavenClient
from vault.client.factors import Factors
from vault.db import database
from vault.keyring import install, load_keyring

Accounts = Callable[..., tuple[HavenClient, str]]
DURESS = "a quite ordinary shopping list"


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app with the default policy: counsel and admins need a second factor."""
    return make_app(HAVEN_FACTOR_REQUIRE_STAFF="true")


@pytest.fixture
def jump() -> Iterator[Callable[[float], None]]:
    """Move the server's clock; put it back afterwards."""
    yield clock.jump
    clock.reset()


def code(secret: str, steps_from_now: int = 0) -> str:
    """The TOTP code of a time step relative to the server's clock."""
    step = int(clock.time() // TOTP_PERIOD) + steps_from_now
    return pyotp.TOTP(secret).generate_otp(step)


def enrol(client: HavenClient) -> tuple[str, list[str]]:
    """Turn TOTP on; the secret and the recovery codes."""
    factors = Factors(client)
    secret = factors.begin_totp()["secret"]
    return secret, factors.confirm_totp(code(secret))


def fresh(live_server: LiveServer) -> HavenClient:
    """A new device."""
    return HavenClient(live_server.url, witnesses=live_server.witnesses)


def test_totp_enrolment_then_every_sign_in_needs_a_code_used_once(
    create_account: Accounts, live_server: LiveServer, jump: Callable[[float], None]
) -> None:
    counsel, _ = create_account("counsel", username="lawyer")
    assert counsel.get("/account")["account"]["must_enrol_factor"] is True
    started = Factors(counsel).begin_totp()
    assert started["uri"].startswith("otpauth://totp/Haven:lawyer?secret=")
    assert (started["digits"], started["period"], started["algorithm"]) == (6, 30, "SHA1")
    assert len(base64.b32decode(started["secret"])) == 20
    confirmed_with = code(started["secret"])
    recovery = Factors(counsel).confirm_totp(confirmed_with)
    assert len(recovery) == 10 and len(set(recovery)) == 10
    assert counsel.get("/account")["account"]["must_enrol_factor"] is False
    state = Factors(counsel).state()
    assert state["totp"] is not None and state["recovery_codes_left"] == 10
    assert state["required"] is True

    with pytest.raises(ApiError) as no_code:
        fresh(live_server).login("lawyer", PASSPHRASE)
    assert no_code.value.code == "factor_required"
    with pytest.raises(ApiError) as replayed:
        fresh(live_server).login("lawyer", PASSPHRASE, factor=confirmed_with)
    assert (replayed.value.status, replayed.value.code) == (401, "code_used")
    jump(TOTP_PERIOD)
    device = fresh(live_server)
    assert device.login("lawyer", PASSPHRASE, factor=code(started["secret"])).username == "lawyer"
    assert device.get("/account")["account"]["must_enrol_factor"] is False
    with pytest.raises(ApiError) as again:
        fresh(live_server).login("lawyer", PASSPHRASE, factor=code(started["secret"]))
    assert again.value.code == "code_used"
    kinds = [e["kind"] for e in device.get("/audit/mine")["entries"]]
    assert "factor_enrolled" in kinds and "login_factor" in kinds and "factor_failed" in kinds


def test_wrong_expired_and_malformed_codes_change_nothing(
    create_account: Accounts, live_server: LiveServer
) -> None:
    survivor, _ = create_account("survivor", username="maria")
    secret, _ = enrol(survivor)
    http = requests.Session()
    _, answer = raw_login(live_server.url, "maria", PASSPHRASE)
    assert answer.status_code == 200 and len(answer.content) == 1024
    assert answer.json()["factor"] == {"methods": ["totp", "recovery_code"]}
    assert "account" not in answer.json()
    http.cookies = answer.cookies
    url = f"{live_server.url}/api/v1"
    # Held, not signed in: nothing but the factor route answers.
    assert http.get(f"{url}/account").status_code == 401
    # Four refusals: the fifth failure would use up the account's attempts (5 a minute).
    for body, status, error in [
        ({"code": "000000" if code(secret) != "000000" else "111111"}, 401, "bad_factor"),
        ({"code": code(secret, -3)}, 401, "bad_factor"),
        ({"code": "12345"}, 400, "invalid_field"),
        ({"code": code(secret), "recovery_code": "AAAA-BBBB-CCCC-DDDD"}, 400, "invalid_field"),
    ]:
        refused = http.post(f"{url}/auth/factor", json=body)
        assert (refused.status_code, refused.json()["error"]["code"]) == (status, error), body
    assert http.get(f"{url}/account").status_code == 401
    done = http.post(f"{url}/auth/factor", json={"code": code(secret, 1)})
    assert done.status_code == 200 and len(done.content) == 1024
    assert done.json()["account"]["username"] == "maria"
    assert http.get(f"{url}/account").status_code == 200
    stray = requests.post(f"{url}/auth/factor", json={"code": code(secret, -1)})
    assert stray.json()["error"]["code"] == "no_pending_sign_in"


def test_recovery_codes_work_once_each(create_account: Accounts, live_server: LiveServer) -> None:
    survivor, _ = create_account("survivor", username="lucia")
    _, recovery = enrol(survivor)
    device = fresh(live_server)
    assert device.login("lucia", PASSPHRASE, factor=recovery[3].lower()).username == "lucia"
    with pytest.raises(ApiError) as used:
        fresh(live_server).login("lucia", PASSPHRASE, factor=recovery[3])
    assert used.value.code == "bad_factor"
    assert Factors(device).state()["recovery_codes_left"] == 9


def test_attempts_are_limited_per_account_across_devices(
    create_account: Accounts, live_server: LiveServer
) -> None:
    survivor, _ = create_account("survivor", username="ana")
    secret, _ = enrol(survivor)
    wrong = "000000" if code(secret) != "000000" else "111111"
    statuses = []
    for _ in range(6):
        try:
            fresh(live_server).login("ana", PASSPHRASE, factor=wrong)
        except ApiError as exc:
            statuses.append(exc.status)
    assert statuses == [401] * 5 + [429]
    with pytest.raises(ApiError) as limited:
        fresh(live_server).login("ana", PASSPHRASE, factor=code(secret))
    assert limited.value.status == 429
    other, _ = create_account("survivor", username="eva")
    other_secret, _ = enrol(other)
    assert fresh(live_server).login("eva", PASSPHRASE, factor=code(other_secret, 1))


def test_policy_removal_and_fresh_sign_in(
    create_account: Accounts, live_server: LiveServer, jump: Callable[[float], None]
) -> None:
    admin_client, _ = create_account("admin", username="root")
    counsel, _ = create_account("counsel", username="lawyer")
    secret, _ = enrol(counsel)
    with pytest.raises(ApiError) as required:
        Factors(counsel).remove_totp()
    assert (required.value.status, required.value.code) == (409, "factor_required")
    assert Factors(counsel).state()["totp"] is not None
    assert Factors(admin_client).policy() is True
    assert Factors(admin_client).set_policy(False) is False
    assert counsel.get("/account")["account"]["must_enrol_factor"] is False
    jump(11 * 60)
    with pytest.raises(ApiError) as stale:
        Factors(counsel).remove_totp()
    assert (stale.value.status, stale.value.code) == (403, "recent_sign_in_required")
    again = fresh(live_server)
    again.login("lawyer", PASSPHRASE, factor=code(secret))
    Factors(again).remove_totp()
    assert Factors(again).state() == {"totp": None, "recovery_codes_left": 0, "required": False}
    assert fresh(live_server).login("lawyer", PASSPHRASE).username == "lawyer"
    kinds = [e["kind"] for e in again.get("/audit/mine")["entries"]]
    assert kinds.count("factor_removed") == 1 and kinds.count("factor_enrolled") == 1
    admin_kinds = [e["kind"] for e in admin_client.get("/audit/mine")["entries"]]
    assert "factor_policy_set" in admin_kinds
    survivor, _ = create_account("survivor", username="rosa", invited_by=again)
    assert Factors(survivor).state()["required"] is False


def test_duress_sign_in_asks_for_the_same_factor(
    create_account: Accounts, live_server: LiveServer, jump: Callable[[float], None]
) -> None:
    counsel, _ = create_account("counsel", username="lawyer")
    survivor, _ = create_account("survivor", username="sofia", invited_by=counsel)
    survivor.set_duress(PASSPHRASE, DURESS, alert_counsel=False)
    secret, _ = enrol(survivor)
    _, real = raw_login(live_server.url, "sofia", PASSPHRASE)
    _, decoy = raw_login(live_server.url, "sofia", DURESS)
    assert real.status_code == decoy.status_code == 200
    assert real.content == decoy.content
    assert sorted(real.headers) == sorted(decoy.headers)
    jump(TOTP_PERIOD)
    opened = fresh(live_server).login("sofia", DURESS, factor=code(secret))
    assert survivor.account is not None and opened.id != survivor.account.id
    decoy_view = fresh(live_server)
    jump(TOTP_PERIOD)
    decoy_view.login("sofia", DURESS, factor=code(secret))
    real_view = Factors(survivor).state()
    assert shape(Factors(decoy_view).state()) == shape(real_view)
    assert Factors(decoy_view).state()["recovery_codes_left"] == 10
    with pytest.raises(ApiError) as refused:
        Factors(decoy_view).remove_totp()
    assert refused.value.status == 403


def test_secrets_are_sealed_and_follow_factor_key_rotation(
    app: Flask, create_account: Accounts, live_server: LiveServer, jump: Callable[[float], None]
) -> None:
    survivor, _ = create_account("survivor", username="nadia")
    secret, recovery = enrol(survivor)
    dump = dump_database(app)
    for needle in [secret, base64.b32decode(secret), *recovery]:
        raw = needle.encode() if isinstance(needle, str) else needle
        assert raw not in dump
        assert raw.replace(b"-", b"") not in dump
    path = Path(app.config["HAVEN_KEYS_DIR"])
    db = database(app).sessions()
    try:
        assert admin.rotate(db, path, "factor") == 2
        admin.retire(db, path, "factor", 1, 0)
    finally:
        db.close()
    install(app, load_keyring(path))
    jump(TOTP_PERIOD)
    assert fresh(live_server).login("nadia", PASSPHRASE, factor=code(secret)).username == "nadia"


def test_counsel_cli_sets_up_totp_and_signs_in_with_it(
    create_account: Accounts, live_server: LiveServer
) -> None:
    create_account("counsel", username="clerk")
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "HAVEN_URL": live_server.url,
        "HAVEN_UNWITNESSED": "true",
        "HAVEN_USERNAME": "clerk",
        "HAVEN_PASSPHRASE": PASSPHRASE,
    }
    setup = subprocess.Popen(
        [sys.executable, "-m", "vault.cli", "account", "totp-setup"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert setup.stdout is not None and setup.stdin is not None
    first = setup.stdout.readline()
    secret = re.fullmatch(r"Secret: ([A-Z2-7]{32})\n", first)
    assert secret is not None, first
    out, _ = setup.communicate(code(secret.group(1)) + "\n", timeout=120)
    assert setup.returncode == 0, out
    assert "TOTP is on." in out
    recovery = re.findall(r"^[A-Z2-7]{4}(?:-[A-Z2-7]{4}){3}$", out, re.M)
    assert len(recovery) == 10
    runner = CliRunner(env={k: env[k] for k in env if k.startswith("HAVEN_")})
    refused = runner.invoke(main, ["docs", "list"], input="AAAA-BBBB-CCCC-DDDD\n")
    assert refused.exit_code != 0 and "sign-in failed" in refused.output
    listed = runner.invoke(main, ["docs", "list"], input=recovery[0] + "\n")
    assert listed.exit_code == 0, listed.output
    assert "TOTP code (or a recovery code)" in listed.output


def test_the_recovery_key_replaces_the_passphrase_not_the_factor(
    create_account: Accounts, live_server: LiveServer
) -> None:
    survivor, recovery_key = create_account("survivor", username="leila")
    _, codes = enrol(survivor)
    device = fresh(live_server)
    with pytest.raises(ApiError) as held:
        device.recover("leila", recovery_key, "a brand new passphrase 2026")
    assert held.value.code == "factor_required"
    again = fresh(live_server)
    opened = again.recover("leila", recovery_key, "another new passphrase 2026", factor=codes[0])
    assert survivor.account is not None and opened.keys == survivor.account.keys
