"""The tamper-evident audit chain: what is recorded, who reads it, and every kind of tampering."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from tests.conftest import LiveServer
from tests.services import wait_for
from vault.audit import chain
from vault.audit.models import AuditCheckpoint, AuditEntry
from vault.cli import main
from vault.client import ApiError, HavenClient
from vault.db import database, serialise_appends
from vault.directory import services as directory
from vault.directory.models import LogKey
from vault.protocol.audit import ChainError


@pytest.fixture
def db(app: Flask) -> Iterator[Session]:
    """A database session on the test app."""
    with app.app_context():
        session = database(app).sessions()
        yield session
        session.close()


def test_account_events_are_chained_and_readable_by_their_owner_and_admins(
    create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer, db: Session
) -> None:
    counsel, _ = create_account("counsel", username="audited")
    with pytest.raises(ApiError):
        HavenClient(live_server.url, witnesses=live_server.witnesses).login(
            "audited", "a wrong passphrase here"
        )
    boss, _ = create_account("admin", username="auditor")
    mine = [e["kind"] for e in counsel.get("/audit/mine")["entries"]]
    assert mine[0] == "login_failed"  # newest first
    assert {"account_created", "key_publish", "login_failed"} <= set(mine)
    everything = boss.get("/admin/audit")
    kinds = [e["kind"] for e in everything["entries"]]
    assert "invite_created" in kinds
    assert everything["length"] == len(kinds)
    assert chain.verify(db) == everything["length"]
    for entry in everything["entries"]:
        assert "audited" not in str(entry) and "auditor" not in str(entry)  # no names, ever


def _fill(db: Session, app: Flask, count: int) -> None:
    ring = app.extensions["haven.keyring"]
    for i in range(count):
        chain.append(db, "test_event", actor_id=f"actor{i}", detail={"n": i}, ring=ring)
    db.commit()


def test_checkpoints_are_signed_every_64_entries(app: Flask, db: Session) -> None:
    _fill(db, app, 130)
    seqs = [c.seq for c in db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))]
    assert seqs == [64, 128]
    assert chain.verify(db) == 130


def _edit(db: Session) -> None:
    db.execute(update(AuditEntry).where(AuditEntry.seq == 5).values(detail='{"n":99}'))


def _remove(db: Session) -> None:
    db.execute(delete(AuditEntry).where(AuditEntry.seq == 5))


def _remove_and_renumber(db: Session) -> None:
    db.execute(delete(AuditEntry).where(AuditEntry.seq == 5))
    for seq in range(6, 11):
        db.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(seq=seq - 1))


def _insert(db: Session) -> None:
    for seq in range(10, 4, -1):
        db.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(seq=seq + 1))
    four = db.get(AuditEntry, 4)
    assert four is not None
    fake = chain.proto.ChainFields(5, four.hash, "login", "intruder", None, None, None, "{}", 1)
    db.add(
        AuditEntry(
            seq=5,
            kind="login",
            actor_id="intruder",
            subject_id=None,
            case_id=None,
            document_id=None,
            detail="{}",
            created_ms=1,
            prev_hash=four.hash,
            hash=fake.hash(),
        )
    )


def _reorder(db: Session) -> None:
    a, b = db.get(AuditEntry, 5), db.get(AuditEntry, 6)
    assert a is not None and b is not None
    fields = ("kind", "actor_id", "detail", "created_ms", "prev_hash", "hash")
    values_a = {f: getattr(a, f) for f in fields}
    values_b = {f: getattr(b, f) for f in fields}
    for f in fields:
        setattr(a, f, values_b[f])
        setattr(b, f, values_a[f])


TAMPERING: dict[str, tuple[Callable[[Session], None], str]] = {
    "edited": (_edit, "entry 5 was edited"),
    "removed": (_remove, "entry 5 is missing"),
    "removed and renumbered": (_remove_and_renumber, "entry 5 does not follow entry 4"),
    "inserted": (_insert, "entry 6 does not follow entry 5"),
    "reordered": (_reorder, "entry 5 does not follow entry 4"),
}


@pytest.mark.parametrize("name", list(TAMPERING))
def test_audit_verify_names_the_tampered_entry(
    app: Flask, db: Session, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    _fill(db, app, 10)
    monkeypatch.setenv("HAVEN_DATABASE_URL", app.config["HAVEN_DATABASE_URL"])
    monkeypatch.setenv("HAVEN_KEYS_DIR", app.config["HAVEN_KEYS_DIR"])
    runner = CliRunner()
    good = runner.invoke(main, ["audit", "verify"])
    assert good.exit_code == 0, good.output
    assert "intact: 10 entries" in good.output
    tamper, message = TAMPERING[name]
    tamper(db)
    db.commit()
    bad = runner.invoke(main, ["audit", "verify"])
    assert bad.exit_code != 0
    assert message in bad.output, bad.output


def test_a_rewritten_chain_is_caught_by_its_signed_checkpoint(app: Flask, db: Session) -> None:
    """An attacker who edits an entry and recomputes every later hash still fails."""
    _fill(db, app, 70)
    entries = list(db.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
    entries[9].detail = '{"n":"rewritten"}'
    prev = entries[8].hash
    for entry in entries[9:]:
        fields = chain.proto.ChainFields(
            entry.seq,
            prev,
            entry.kind,
            entry.actor_id,
            entry.subject_id,
            entry.case_id,
            entry.document_id,
            entry.detail,
            entry.created_ms,
        )
        entry.prev_hash, entry.hash = prev, fields.hash()
        prev = entry.hash
    db.commit()
    with pytest.raises(ChainError, match="entry 64 differs from its signed checkpoint"):
        chain.verify(db)


def test_checkpoint_command_signs_the_newest_entry(
    app: Flask, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(db, app, 3)
    monkeypatch.setenv("HAVEN_DATABASE_URL", app.config["HAVEN_DATABASE_URL"])
    monkeypatch.setenv("HAVEN_KEYS_DIR", app.config["HAVEN_KEYS_DIR"])
    runner = CliRunner()
    assert "checkpoint at entry 3" in runner.invoke(main, ["audit", "checkpoint"]).output
    assert "already checkpointed" in runner.invoke(main, ["audit", "checkpoint"]).output
    assert chain.verify(db) == 3


def test_document_events_join_the_chain_and_the_owner_sees_who_opened(
    create_account: Callable[..., tuple[HavenClient, str]], db: Session, tmp_path: object
) -> None:
    from pathlib import Path

    from tests.integration.documents_fixtures import fast_documents, write_random_file

    counsel, _ = create_account("counsel", username="reader")
    survivor, _ = create_account("survivor", username="owner", invited_by=counsel)
    assert counsel.account is not None and survivor.account is not None
    [case] = survivor.cases()
    source = Path(str(tmp_path)) / "birth-certificate.png"
    write_random_file(source, 200_000, seed=b"audit")
    doc = fast_documents(survivor).upload(case["id"], source, doc_type="birth_certificate")
    fast_documents(survivor).grant(doc.id, counsel.account.id)
    out = Path(str(tmp_path)) / "out"
    out.mkdir()
    fast_documents(counsel).download(doc.id, out / "copy.png")
    opened = [
        e
        for e in survivor.get("/audit/mine")["entries"]
        if e["kind"] == "download" and e["document_id"] == doc.id
    ]
    assert [e["actor_id"] for e in opened] == [counsel.account.id]
    kinds = {e["kind"] for e in survivor.get("/audit/mine")["entries"]}
    assert {"upload", "grant", "download"} <= kinds
    assert chain.verify(db) >= 6
    assert "birth-certificate" not in str(survivor.get("/audit/mine"))


def test_a_checkpoint_waits_for_a_key_publication_instead_of_deadlocking_with_it(
    app: Flask,
) -> None:
    """The interleaving a full run hit on a fresh database, where the log key has no row yet.

    A registration holds the key log's lock and has recorded the log key, uncommitted; the
    checkpoint job starts; the registration then appends to the chain. The job used to take
    the chain's lock and then wait on the log key's row while the registration waited on the
    chain's lock: PostgreSQL failed one of them (the registration answered 503). The job now
    records the log key before taking the chain's lock, so it waits its turn and both commit.
    """
    ring = app.extensions["haven.keyring"]
    sessions = database(app).sessions
    with sessions() as first:  # no app context, no ring: an entry with no checkpoint
        chain.append(first, "test_event")
        first.commit()
    with sessions() as probe:
        assert probe.scalars(select(LogKey)).first() is None
    publishing = sessions()
    try:
        serialise_appends(publishing, directory.ADVISORY_LOCK_ID)
        directory.ensure_log_key(publishing, ring)
        outcomes: list[object] = []

        def checkpoint_job() -> None:
            try:
                with sessions() as job:
                    outcomes.append(chain.checkpoint(job, ring))
            except Exception as exc:  # a deadlock victim fails here, or in the append below
                outcomes.append(exc)

        job = threading.Thread(target=checkpoint_job)
        job.start()

        def job_waits() -> bool:
            with database(app).engine.connect() as conn:
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND datname = current_database()"
                    )
                ).scalar_one()
            return bool(waiting)

        wait_for(job_waits, "the checkpoint job waiting for the publication")
        chain.append(publishing, "account_created", ring=ring)
        publishing.commit()
        job.join(timeout=60)
        assert not job.is_alive()
    finally:
        publishing.close()
    [outcome] = outcomes
    assert isinstance(outcome, AuditCheckpoint), outcome
    assert outcome.seq == 2  # after the registration's entry, which it waited for
    with sessions() as db:
        assert chain.verify(db) == 2
