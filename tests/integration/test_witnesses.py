"""Witnessed key-log heads with a real litewitness: cosigned appends, a refused fork, a witness down."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from flask import Flask

from tests.conftest import PASSPHRASE, LiveServer
from tests.services import PostgresServer
from vault.accounts import services as accounts
from vault.accounts.models import Role
from vault.admin import services as admin
from vault.cli import main
from vault.client import HavenClient, WitnessPolicy
from vault.db import database
from vault.directory import services as directory
from vault.directory.models import Cosignature
from vault.embedded import Litewitness, register_log
from vault.keyring import keyring
from vault.protocol import checkpoint as cp
from vault.protocol import transparency as kt
from vault.protocol.encoding import b64encode


@pytest.fixture
def app(make_witnessed_app: Callable[..., Flask]) -> Flask:
    """The app, its key log cosigned by the session's litewitness."""
    return make_witnessed_app()


def _tree_size(app: Flask) -> int:
    db = database(app).sessions()
    try:
        return directory.tree_size(db)
    finally:
        db.close()


def _witness_state(witness: Litewitness, origin: str) -> tuple[int, str]:
    """What the witness itself recorded for the log: (size, base64 root)."""
    with closing(sqlite3.connect(witness.db)) as conn:
        row = conn.execute(
            "SELECT tree_size, tree_hash FROM log WHERE origin = ?", (origin,)
        ).fetchone()
    return int(row[0]), str(row[1])


def _log_verifier(app: Flask) -> cp.VerifierKey:
    with app.app_context():
        public = kt.log_public_key(keyring().current("logsign"))
    return cp.log_verifier(app.config["HAVEN_LOG_ORIGIN"], public)


def test_every_append_is_cosigned_and_the_client_accepts_the_head(
    app: Flask,
    create_account: Callable[..., tuple[HavenClient, str]],
    live_server: LiveServer,
    litewitness: Litewitness,
) -> None:
    counsel, _ = create_account("counsel", username="w-counsel")
    survivor, _ = create_account("survivor", username="w-survivor", invited_by=counsel)
    size = _tree_size(app)
    assert size >= 2
    answer = counsel.get("/directory/checkpoint")
    assert answer["size"] == size
    witness_key = cp.parse_verifier_key(litewitness.vkey)
    checked = cp.verify_cosigned(answer["checkpoint"], [_log_verifier(app)], [witness_key], 1)
    assert checked.size == size and checked.origin == app.config["HAVEN_LOG_ORIGIN"]
    # The witness advanced, with consistency proofs, to exactly this head.
    witness_root = cp.Checkpoint(checked.origin, size, checked.root).body().split("\n")[2]
    assert _witness_state(litewitness, checked.origin) == (size, witness_root)
    head = survivor.directory.refresh()
    assert head.size == size and head.root == checked.root
    [case] = counsel.cases()  # every member key verified under the cosigned head
    assert len(case["members"]) == 2


def test_a_forked_log_with_the_same_key_is_refused_by_the_witness_and_the_client(
    make_witnessed_app: Callable[..., Flask],
    app: Flask,
    create_account: Callable[..., tuple[HavenClient, str]],
    live_server: LiveServer,
    litewitness: Litewitness,
    postgres: PostgresServer,
) -> None:
    counsel, _ = create_account("counsel", username="real-counsel")
    create_account("survivor", username="real-survivor", invited_by=counsel)
    origin = app.config["HAVEN_LOG_ORIGIN"]
    before = _witness_state(litewitness, origin)
    # The operator runs a second database behind the same log key and origin: a split view
    # in which the counsel's key is one the operator made.
    name = f"t_{secrets.token_hex(6)}"
    postgres.execute(f"CREATE DATABASE {name} TEMPLATE haven_template")
    fork = make_witnessed_app(HAVEN_DATABASE_URL=postgres.url(name))
    assert _log_verifier(fork) == _log_verifier(app)
    with LiveServer(fork) as forked:
        for name in ("real-counsel", "forged-1", "forged-2"):
            with fork.app_context():
                db = database(fork).sessions()
                _, token = accounts.create_invite(db, Role.COUNSEL, None, 24)
                db.close()
            # The fork publishes, but its client refuses every head of it: none is cosigned.
            victim = HavenClient(forked.url, witnesses=forked.witnesses)
            with pytest.raises(kt.TransparencyError, match="cosigned by 0 of the 1"):
                victim.register(b64encode(token), name, PASSPHRASE)
        assert _tree_size(fork) > before[0]  # longer than the real log: a proof was demanded
        with pytest.raises(kt.TransparencyError, match="cosigned by 0 of the 1"):
            victim.directory.refresh()
    # The witness kept the real log's head, and the real log goes on being cosigned.
    assert _witness_state(litewitness, origin) == before
    create_account("survivor", username="real-survivor-2", invited_by=counsel)
    assert _witness_state(litewitness, origin)[0] == _tree_size(app)
    counsel.directory.refresh()


@pytest.fixture
def witness_down(litewitness: Litewitness) -> Iterator[Litewitness]:
    """Stop the session's witness for one test and start it again afterwards."""
    litewitness.stop()
    try:
        yield litewitness
    finally:
        if litewitness.proc is None:
            litewitness.start()


def test_publishing_works_while_the_witness_is_down_and_clients_wait_for_the_cosignature(
    app: Flask,
    invite: Callable[..., str],
    live_server: LiveServer,
    witness_down: Litewitness,
) -> None:
    early = HavenClient(live_server.url, witnesses=live_server.witnesses)
    # The account and its key are published; the client refuses the uncosigned head.
    with pytest.raises(kt.TransparencyError, match="cosigned by 0 of the 1 witnesses"):
        early.register(invite("counsel"), "early", PASSPHRASE)
    assert _tree_size(app) == 1
    witness_down.start()
    counsel = HavenClient(live_server.url, witnesses=live_server.witnesses)
    counsel.login("early", PASSPHRASE)  # the checkpoint request retried the witness
    assert counsel.directory.head is not None and counsel.directory.head.size == 1
    witness_down.stop()
    late = HavenClient(live_server.url, witnesses=live_server.witnesses)
    with pytest.raises(kt.TransparencyError, match="not yet in a checkpoint"):
        late.register(counsel.create_invite("survivor"), "late", PASSPHRASE)
    assert _tree_size(app) == 2
    # The newest cosigned checkpoint does not hold the survivor's key yet.
    with pytest.raises(kt.TransparencyError, match="not yet in a checkpoint"):
        counsel.cases()
    witness_down.start()
    [case] = counsel.cases()
    assert {m["username"] for m in case["members"]} == {"early", "late"}
    assert counsel.directory.head is not None and counsel.directory.head.size == 2


def test_the_witness_answers_409_with_its_size_and_the_server_follows_it(
    app: Flask,
    create_account: Callable[..., tuple[HavenClient, str]],
    live_server: LiveServer,
    litewitness: Litewitness,
) -> None:
    counsel, _ = create_account("counsel", username="first")
    create_account("survivor", username="second", invited_by=counsel)
    origin = app.config["HAVEN_LOG_ORIGIN"]
    note = cp.parse_note(counsel.get("/directory/checkpoint")["checkpoint"])
    body = f"old 0\n\n{cp.Note(note.text, note.signatures[:1]).encode()}"
    answer = requests.post(f"{litewitness.url}/add-checkpoint", data=body.encode(), timeout=5)
    assert answer.status_code == 409
    assert answer.headers["Content-Type"] == "text/x.tlog.size"
    assert answer.text == f"{_tree_size(app)}\n"
    # Forget what we stored: the server starts again from 0 and follows the 409.
    db = database(app).sessions()
    db.query(Cosignature).delete()
    db.commit()
    db.close()
    create_account("survivor", username="third", invited_by=counsel)
    assert _witness_state(litewitness, origin)[0] == _tree_size(app)
    counsel.directory.refresh()


def test_log_vkey_prints_what_the_witness_registers_and_log_cosign_catches_up(
    app: Flask,
    invite: Callable[..., str],
    live_server: LiveServer,
    witness_down: Litewitness,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = {
        "HAVEN_DATABASE_URL": app.config["HAVEN_DATABASE_URL"],
        "HAVEN_KEYS_DIR": app.config["HAVEN_KEYS_DIR"],
        "HAVEN_LOG_ORIGIN": app.config["HAVEN_LOG_ORIGIN"],
        "HAVEN_WITNESSES": f"{witness_down.vkey} {witness_down.url}",
        "HAVEN_SECURE_COOKIES": "false",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    printed = CliRunner().invoke(main, ["log", "vkey"])
    assert printed.output == f"{app.config['HAVEN_LOG_ORIGIN']} {_log_verifier(app).encode()}\n"
    client = HavenClient(live_server.url, witnesses=live_server.witnesses)
    with pytest.raises(kt.TransparencyError, match="cosigned by 0"):
        client.register(invite("counsel"), "catch-up", PASSPHRASE)
    witness_down.start()
    cosigned = CliRunner().invoke(main, ["log", "cosign"])
    assert cosigned.exit_code == 0, cosigned.output
    assert "cosigned by 1 of 1 witnesses" in cosigned.output
    assert _witness_state(witness_down, app.config["HAVEN_LOG_ORIGIN"])[0] == 1


REFRESH_WAIT = 2.2  # processes re-read keys/ at most every 2 s


def test_a_log_key_rotation_is_cosigned_until_the_witness_needs_the_new_key(
    app: Flask,
    create_account: Callable[..., tuple[HavenClient, str]],
    live_server: LiveServer,
    litewitness: Litewitness,
) -> None:
    counsel, _ = create_account("counsel", username="rot-counsel")
    origin = app.config["HAVEN_LOG_ORIGIN"]
    path = Path(app.config["HAVEN_KEYS_DIR"])
    db = database(app).sessions()
    assert admin.rotate(db, path, "logsign") == 2
    time.sleep(REFRESH_WAIT)
    # Signed by v2 and v1; the witness knows only v1 and still cosigns.
    create_account("survivor", username="rot-survivor", invited_by=counsel)
    note = cp.parse_note(counsel.get("/directory/checkpoint")["checkpoint"])
    assert [s.name for s in note.signatures] == [origin, origin, litewitness.name]
    head = counsel.directory.refresh()
    assert head.key_version == 2 and head.size == _tree_size(app) == 2
    admin.retire(db, path, "logsign", 1, 0)
    db.close()
    time.sleep(REFRESH_WAIT)
    late = HavenClient(live_server.url, witnesses=live_server.witnesses)
    with pytest.raises(kt.TransparencyError, match="not yet in a checkpoint"):
        late.register(counsel.create_invite("survivor"), "rot-late", PASSPHRASE)
    assert _witness_state(litewitness, origin)[0] == 2  # v2 alone is a key it does not know
    with app.app_context():
        v2 = kt.log_public_key(keyring().current("logsign"))
    register_log(litewitness.db, origin, [cp.log_verifier(origin, v2).encode()])
    assert counsel.directory.refresh().size == 3  # the checkpoint request retried the witness
    assert len(counsel.cases()) == 2


def test_a_server_that_drops_its_witnesses_is_refused_by_witnessed_clients(
    make_app: Callable[..., Flask],
    invite: Callable[..., str],
    litewitness: Litewitness,
) -> None:
    # The same database and keys, restarted without HAVEN_WITNESSES: heads are served with
    # the log's signature only.
    app = make_app()
    with LiveServer(app) as server:
        plain = HavenClient(server.url, witnesses=server.witnesses)
        plain.register(invite("counsel"), "unwitnessed", PASSPHRASE)
        note = cp.parse_note(plain.get("/directory/checkpoint")["checkpoint"])
        assert [s.name for s in note.signatures] == [app.config["HAVEN_LOG_ORIGIN"]]
        policy = WitnessPolicy.of([litewitness.vkey], 1)
        careful = HavenClient(server.url, witnesses=policy)
        with pytest.raises(kt.TransparencyError, match="cosigned by 0 of the 1"):
            careful.login("unwitnessed", PASSPHRASE)
