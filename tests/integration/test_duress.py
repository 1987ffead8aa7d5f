"""The duress passphrase and its decoy (protocol §18) over real HTTP on PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
import requests
from flask import Flask

from tests.conftest import PASSPHRASE, LiveServer
from tests.integration.documents_fixtures import fast_documents
from vault.client import ApiError, HavenClient
from vault.client.messages import Messenger
from vault.db import database
from vault.protocol.encoding import b64decode, b64encode
from vault.protocol.kdf import KdfParams, passphrase_keys

DURESS = "a quite ordinary shopping list"
NEW_PASSPHRASE = "a brand new passphrase 2026"

Accounts = Callable[..., tuple[HavenClient, str]]


def shape(value: Any) -> Any:
    """The JSON structure with every leaf replaced by its type name."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


@pytest.fixture
def real_case(
    create_account: Accounts,
) -> tuple[HavenClient, HavenClient, str, str, str]:
    """A survivor with a real case holding a document and a conversation with counsel."""
    counsel, _ = create_account("counsel", username="lawyer1")
    survivor, _ = create_account("survivor", username="sofia", invited_by=counsel)
    case_id = survivor.cases()[0]["id"]
    doc = fast_documents(survivor).upload(
        case_id, io.BytesIO(b"passport scan"), doc_type="passport", name="passport.pdf"
    )
    assert counsel.account is not None
    talk = Messenger(survivor).create_conversation(case_id, [counsel.account.id])
    Messenger(survivor).send(talk.id, "the hearing is on Monday")
    return survivor, counsel, case_id, doc.id, talk.id


def raw_login(url: str, username: str, passphrase: str) -> tuple[dict[str, Any], requests.Response]:
    """Pre-login and login by hand; the pre-login answer and the login response."""
    http = requests.Session()
    pre = http.post(f"{url}/api/v1/auth/prelogin", json={"username": username})
    assert pre.status_code == 200
    kdf = pre.json()["kdf"]
    params = KdfParams(b64decode(kdf["salt"]), kdf["opslimit"], kdf["memlimit"], kdf["alg"])
    derived = passphrase_keys(passphrase, params)
    answer = http.post(
        f"{url}/api/v1/auth/login",
        json={"username": username, "auth_key": b64encode(derived.auth_key)},
    )
    return kdf, answer


def test_prelogin_and_login_answers_look_the_same_for_both_passphrases(
    real_case: tuple[HavenClient, HavenClient, str, str, str], live_server: LiveServer
) -> None:
    survivor, *_ = real_case
    survivor.set_duress(PASSPHRASE, DURESS, alert_counsel=True)
    real_kdf, real = raw_login(live_server.url, "sofia", PASSPHRASE)
    duress_kdf, decoy = raw_login(live_server.url, "sofia", DURESS)
    assert real_kdf == duress_kdf
    assert real.status_code == decoy.status_code == 200
    assert len(real.content) == len(decoy.content) == 1024
    assert shape(real.json()) == shape(decoy.json())
    assert sorted(real.headers) == sorted(decoy.headers)
    assert real.json()["account"]["username"] == decoy.json()["account"]["username"] == "sofia"
    assert real.json()["account"]["id"] != decoy.json()["account"]["id"]


def test_login_answer_is_padded_for_an_account_without_duress(
    create_account: Accounts, live_server: LiveServer
) -> None:
    create_account("counsel", username="a.rather.long.username.of.32.ch")
    _, answer = raw_login(live_server.url, "a.rather.long.username.of.32.ch", PASSPHRASE)
    assert len(answer.content) == 1024
    assert set(answer.json()) == {"account", "pad"}


def test_decoy_session_reaches_nothing_of_the_real_account(
    real_case: tuple[HavenClient, HavenClient, str, str, str], live_server: LiveServer
) -> None:
    survivor, counsel, case_id, doc_id, talk_id = real_case
    assert survivor.account is not None and counsel.account is not None
    real_id = survivor.account.id
    survivor.set_duress(PASSPHRASE, DURESS, alert_counsel=False)
    decoy = HavenClient(live_server.url, witnesses=live_server.witnesses)
    account = decoy.login("sofia", DURESS)
    assert account.id != real_id and account.username == "sofia" and account.role == "survivor"
    cases = decoy.cases()
    assert len(cases) == 1 and cases[0]["id"] != case_id
    assert [m["user_id"] for m in cases[0]["members"]] == [account.id]
    # The decoy has a space of its own it can fill.
    fast_documents(decoy).upload(
        cases[0]["id"], io.BytesIO(b"recipes"), doc_type="other", name="recipes.txt"
    )
    assert len(fast_documents(decoy).case_documents(cases[0]["id"]).documents) == 1
    for path in (
        f"/cases/{case_id}",
        f"/cases/{case_id}/documents",
        f"/cases/{case_id}/events",
        f"/documents/{doc_id}",
        f"/documents/{doc_id}/content",
        f"/conversations/{talk_id}",
        f"/conversations/{talk_id}/messages",
        f"/users/{real_id}/keys",
        f"/users/{counsel.account.id}/keys",
    ):
        with pytest.raises(ApiError) as err:
            decoy.get(path)
        assert err.value.status == 404, path
    assert decoy.get("/conversations")["conversations"] == []
    assert decoy.get("/account/duress") == {"duress": None}
    everything = str(decoy.get("/audit/mine")) + str(decoy.get("/account"))
    for secret in (real_id, case_id, doc_id, talk_id, counsel.account.id):
        assert secret not in everything
    with pytest.raises(ApiError) as err:
        decoy.set_duress(DURESS, "another duress passphrase", alert_counsel=False)
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        decoy.change_passphrase(DURESS, NEW_PASSPHRASE)
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        decoy.post("/account/keys/reseal")
    assert err.value.status == 403
    # Counsel never sees the decoy.
    assert [c["id"] for c in counsel.cases()] == [case_id]


def test_counsel_gets_the_alert_only_when_it_is_on(
    real_case: tuple[HavenClient, HavenClient, str, str, str], live_server: LiveServer
) -> None:
    survivor, counsel, case_id, *_ = real_case

    def alerts() -> int:
        events = counsel.get(f"/cases/{case_id}/events")["events"]
        return sum(1 for e in events if e["kind"] == "duress_alert")

    survivor.set_duress(PASSPHRASE, DURESS, alert_counsel=False)
    HavenClient(live_server.url, witnesses=live_server.witnesses).login("sofia", DURESS)
    assert alerts() == 0
    assert survivor.post("/account/duress/alert", {"alert_counsel": True})["duress"][
        "alert_counsel"
    ]
    HavenClient(live_server.url, witnesses=live_server.witnesses).login("sofia", DURESS)
    assert alerts() == 1
    HavenClient(live_server.url, witnesses=live_server.witnesses).login("sofia", PASSPHRASE)
    assert alerts() == 1


def test_setting_needs_the_passphrase_and_a_different_duress_passphrase(
    real_case: tuple[HavenClient, HavenClient, str, str, str],
) -> None:
    survivor, *_ = real_case
    with pytest.raises(ApiError) as err:
        survivor.set_duress("not the passphrase at all", DURESS, alert_counsel=False)
    assert (err.value.status, err.value.code) == (401, "bad_credentials")
    with pytest.raises(ApiError) as err:
        survivor.set_duress(PASSPHRASE, PASSPHRASE, alert_counsel=False)
    assert (err.value.status, err.value.code) == (400, "duress_same")
    assert survivor.get("/account/duress") == {"duress": None}
    survivor.set_duress(PASSPHRASE, DURESS, alert_counsel=True)
    with pytest.raises(ApiError) as err:
        survivor.set_duress(PASSPHRASE, "yet another duress passphrase", alert_counsel=True)
    assert (err.value.status, err.value.code) == (409, "duress_set")
    assert survivor.get("/account/duress")["duress"]["alert_counsel"] is True


def test_removing_or_changing_the_passphrase_turns_duress_off(
    real_case: tuple[HavenClient, HavenClient, str, str, str], live_server: LiveServer
) -> None:
    survivor, *_ = real_case

    def duress_login() -> int:
        try:
            HavenClient(live_server.url, witnesses=live_server.witnesses).login("sofia", DURESS)
        except ApiError as exc:
            return exc.status
        return 200

    survivor.set_duress(PASSPHRASE, DURESS, alert_counsel=False)
    assert duress_login() == 200
    with pytest.raises(ApiError) as err:
        survivor.remove_duress("not the passphrase at all")
    assert err.value.status == 401
    survivor.remove_duress(PASSPHRASE)
    assert duress_login() == 401
    assert survivor.get("/account/duress") == {"duress": None}
    survivor.set_duress(PASSPHRASE, DURESS, alert_counsel=False)
    assert duress_login() == 200
    survivor.change_passphrase(PASSPHRASE, NEW_PASSPHRASE)
    assert duress_login() == 401
    assert survivor.get("/account/duress") == {"duress": None}


def test_admin_list_and_data_key_reencryption_keep_the_decoy_hidden(
    real_case: tuple[HavenClient, HavenClient, str, str, str],
    create_account: Accounts,
    app: Flask,
    live_server: LiveServer,
) -> None:
    survivor, *_ = real_case
    survivor.set_duress(PASSPHRASE, DURESS, alert_counsel=False)
    admin, _ = create_account("admin", username="admin1")
    before = admin.get("/admin/figures")
    names = [a["username"] for a in admin.get("/admin/accounts")["accounts"]]
    assert names.count("sofia") == 1
    survivor.remove_duress(PASSPHRASE)
    assert admin.get("/admin/figures") == before
    survivor.set_duress(PASSPHRASE, DURESS, alert_counsel=False)
    from vault.admin import services as admin_services

    with app.app_context():
        db = database(app).sessions()
        ring = app.extensions["haven.keyring"]
        admin_services.reencrypt_data(db, ring)
        db.close()
    HavenClient(live_server.url, witnesses=live_server.witnesses).login("sofia", PASSPHRASE)
    decoy = HavenClient(live_server.url, witnesses=live_server.witnesses).login("sofia", DURESS)
    assert decoy.username == "sofia"


def test_recovery_and_key_rotation_turn_duress_off(
    create_account: Accounts, live_server: LiveServer
) -> None:
    counsel, _ = create_account("counsel", username="lawyer2")
    survivor, _ = create_account("survivor", username="lina", invited_by=counsel)

    def duress_login() -> int:
        try:
            HavenClient(live_server.url, witnesses=live_server.witnesses).login("lina", DURESS)
        except ApiError as exc:
            return exc.status
        return 200

    survivor.set_duress(PASSPHRASE, DURESS, alert_counsel=False)
    recovery = survivor.rotate_keys(PASSPHRASE)
    assert duress_login() == 401
    assert survivor.get("/account/duress") == {"duress": None}
    survivor.set_duress(PASSPHRASE, DURESS, alert_counsel=False)
    assert duress_login() == 200
    HavenClient(live_server.url, witnesses=live_server.witnesses).recover(
        "lina", recovery, NEW_PASSPHRASE
    )
    assert duress_login() == 401
