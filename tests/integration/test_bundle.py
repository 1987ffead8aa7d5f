"""The evidence bundle: counsel exports a real case, `haven verify` passes it with no server,
and one byte changed in any part fails with that part's name (protocol §24)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from tests.conftest import PASSPHRASE, LiveServer
from tests.integration.documents_fixtures import fast_documents, pair
from vault.audit import chain
from vault.cli import main
from vault.client import HavenClient
from vault.client.bundle import VERIFIER_ENV, BundleError, export_bundle
from vault.client.verify import verify_bundle
from vault.db import database
from vault.protocol import bundle as pb

__all__ = ["pair"]

Pair = tuple[HavenClient, HavenClient, str]


@pytest.fixture
def app(make_witnessed_app: Callable[..., Flask]) -> Flask:
    """A server whose key log the session's witness cosigns."""
    return make_witnessed_app()


@pytest.fixture
def case(pair: Pair, tmp_path: Path) -> tuple[Pair, dict[str, str]]:
    """A survivor's two shared documents (one of two chunks), counsel's own form, and a
    counsel download: uploads, grants and opens in the audit chain."""
    survivor, counsel, case_id = pair
    assert counsel.account is not None and survivor.account is not None
    ids: dict[str, str] = {}
    sources = tmp_path / "src"
    sources.mkdir()
    for owner, name, size, reader in (
        (survivor, "passport.pdf", 70_000, counsel.account.id),
        (survivor, "visa تصريح.png", 900, counsel.account.id),
        (counsel, "i-914 form.pdf", 3_000, survivor.account.id),
    ):
        (sources / name).write_bytes(os.urandom(size))
        docs = fast_documents(owner)
        ids[name] = docs.upload(case_id, sources / name, doc_type="other").id
        docs.grant(ids[name], reader)
    fast_documents(counsel).download(ids["passport.pdf"], tmp_path / "opened.pdf")
    return pair, ids


def _bundle(live_server: LiveServer, counsel: HavenClient, *args: str) -> Result:
    assert counsel.account is not None
    env = {
        "HAVEN_URL": live_server.url,
        "HAVEN_WITNESS_KEYS": " ".join(k.encode() for k in live_server.witnesses.keys),
        "HAVEN_WITNESS_QUORUM": str(live_server.witnesses.quorum),
        "HAVEN_USERNAME": counsel.account.username,
        "HAVEN_PASSPHRASE": PASSPHRASE,
    }
    return CliRunner(env=env).invoke(main, ["docs", "bundle", *args])


def _flip(bundle: Path, member: str, out: Path) -> Path:
    """A copy of the bundle with one byte of one part changed (the zip itself stays sound)."""
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = bytearray(src.read(info))
            if info.filename == member:
                data[len(data) // 2] ^= 0x01
            dst.writestr(info, bytes(data))
    return out


def test_counsel_exports_a_bundle_that_verifies_offline_and_names_each_tampered_part(
    case: tuple[Pair, dict[str, str]],
    live_server: LiveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (survivor, counsel, case_id), ids = case
    verifier = tmp_path / "verify.html"
    verifier.write_text("<!doctype html><title>verifier</title>")
    monkeypatch.setenv(VERIFIER_ENV, str(verifier))
    out = tmp_path / "case.zip"
    result = _bundle(live_server, counsel, case_id, str(out))
    assert result.exit_code == 0, result.output
    assert "3 documents" in result.output

    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read(pb.MANIFEST))
        custody = json.loads(archive.read(pb.events_path(ids["passport.pdf"])))
        report = archive.read(pb.REPORT)
        passport = next(n for n in names if n.endswith("/passport.pdf"))
        assert len(archive.read(passport)) == 70_000
    assert {pb.MANIFEST, pb.SIGNATURE, pb.CHECKPOINT, pb.HEAD, pb.REPORT, pb.VERIFIER} <= names
    assert manifest["exporter"]["username"] == counsel.account.username  # type: ignore[union-attr]
    assert manifest["trust"]["quorum"] == 1 and len(manifest["trust"]["witnesses"]) == 1
    kinds = [e["kind"] for e in custody["entries"]]
    assert kinds[:2] == ["upload", "grant"] and "download" in kinds
    assert custody["links"] == []  # every document event is sealed by its own checkpoint
    assert report.startswith(b"%PDF")

    # No server from here on: the bundle alone.
    live_server.server.shutdown()
    verified = CliRunner().invoke(main, ["verify", str(out)])
    assert verified.exit_code == 0, verified.output
    assert "The bundle verifies" in verified.output

    tampered = {
        passport: "file",
        pb.record_path(ids["visa تصريح.png"]): "record",
        pb.key_path(survivor.account.id, 1): "proof",  # type: ignore[union-attr]
        pb.events_path(ids["i-914 form.pdf"]): "event",
        pb.CHECKPOINT: "checkpoint",
        pb.HEAD: "checkpoint",
        pb.REPORT: "report",
        pb.MANIFEST: "manifest",
        pb.SIGNATURE: "manifest",
    }
    for member, kind in tampered.items():
        changed = verify_bundle(_flip(out, member, tmp_path / "tampered.zip"))
        assert {f.part for f in changed.failures} == {kind}, (member, changed.failures)
        cli = CliRunner().invoke(main, ["verify", str(tmp_path / "tampered.zip")])
        assert cli.exit_code == 1 and f"FAILED {kind} " in cli.output


def test_a_ciphertext_bundle_of_one_document_verifies_from_its_unpacked_folder(
    case: tuple[Pair, dict[str, str]], live_server: LiveServer, tmp_path: Path
) -> None:
    (_, counsel, case_id), ids = case
    chosen = ids["passport.pdf"]
    out = tmp_path / "one.zip"
    result = export_bundle(counsel, case_id, out, document_ids=[chosen], content="ciphertext")
    assert result.document_ids == [chosen]
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(folder)
        stored = archive.read(f"files/{chosen}/{chosen}.haven")
    assert len(stored) == 70_000 + 17 * 2
    assert verify_bundle(folder).is_valid
    (folder / "files" / chosen / "extra.txt").write_text("added later")
    failures = verify_bundle(folder).failures
    assert [f.part for f in failures] == ["manifest"] and "extra.txt" in str(failures[0])


def test_bad_requests_change_nothing_and_say_why(
    case: tuple[Pair, dict[str, str]], tmp_path: Path
) -> None:
    (_, counsel, case_id), _ = case
    out = tmp_path / "x.zip"
    with pytest.raises(BundleError, match="not a readable"):
        export_bundle(counsel, case_id, out, document_ids=["AAAAAAAAAAAAAAAAAAAAAA"])
    with pytest.raises(BundleError, match="plaintext or ciphertext"):
        export_bundle(counsel, case_id, out, content="zip")
    assert not out.exists() and not list(tmp_path.glob(".haven-bundle-*"))
    not_a_bundle = tmp_path / "not.zip"
    not_a_bundle.write_bytes(b"PK\x03\x04 nonsense")
    assert [f.part for f in verify_bundle(not_a_bundle).failures] == ["manifest"]
    empty = io.BytesIO()
    zipfile.ZipFile(empty, "w").close()
    (tmp_path / "empty.zip").write_bytes(empty.getvalue())
    assert [f.part for f in verify_bundle(tmp_path / "empty.zip").failures] == ["manifest"]


def test_an_unsealed_older_event_is_proven_through_links_to_a_fresh_checkpoint(
    case: tuple[Pair, dict[str, str]], app: Flask, tmp_path: Path
) -> None:
    (survivor, counsel, case_id), ids = case
    chosen = ids["passport.pdf"]
    with app.app_context():
        session = database(app).sessions()
        try:  # as recorded before document events were sealed: no checkpoint of its own
            chain.append(
                session,
                "download",
                actor_id=counsel.account.id,
                case_id=case_id,
                document_id=chosen,  # type: ignore[union-attr]
            )
            chain.append(session, "login", actor_id=survivor.account.id)  # type: ignore[union-attr]
            session.commit()
        finally:
            session.close()
    custody = counsel.get(f"/documents/{chosen}/custody")
    assert [e["kind"] for e in custody["links"]] == ["login"]
    assert custody["checkpoints"][-1]["seq"] == custody["links"][-1]["seq"]
    out = tmp_path / "linked.zip"
    export_bundle(counsel, case_id, out, document_ids=[chosen])
    assert verify_bundle(out).is_valid
