"""`haven docs list` and `haven docs pull` for counsel, against a live server."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from tests.conftest import PASSPHRASE, LiveServer
from tests.integration.documents_fixtures import (
    fast_documents,
    pair,
    read_object,
    replace_object,
)
from tests.services import MinioServer
from vault.cli import main
from vault.client import HavenClient
from vault.client.cli import safe_file_name

__all__ = ["pair"]

Pair = tuple[HavenClient, HavenClient, str]


def _run(live_server: LiveServer, client: HavenClient, *args: str) -> Result:
    assert client.account is not None
    env = {
        "HAVEN_URL": live_server.url,
        "HAVEN_UNWITNESSED": "true",
        "HAVEN_USERNAME": client.account.username,
        "HAVEN_PASSPHRASE": PASSPHRASE,
    }
    return CliRunner(env=env).invoke(main, ["docs", *args])


def test_pull_writes_verified_files_and_a_manifest_and_refuses_tampered_ones(
    pair: Pair, app: Flask, minio: MinioServer, live_server: LiveServer, tmp_path: Path
) -> None:
    survivor, counsel, case_id = pair
    assert counsel.account is not None
    docs = fast_documents(survivor)
    files = {
        "passport.pdf": os.urandom(150_000),
        ".hidden birth certificate.png": os.urandom(2_000),
        "tampered.pdf": os.urandom(70_000),
        "not shared.pdf": os.urandom(100),
    }
    ids = {}
    for name, data in files.items():
        (tmp_path / "src").mkdir(exist_ok=True)
        path = tmp_path / "src" / name
        path.write_bytes(data)
        ids[name] = docs.upload(case_id, path, doc_type="other").id
        if name != "not shared.pdf":
            docs.grant(ids[name], counsel.account.id)
    second = tmp_path / "src" / "second" / "passport.pdf"
    second.parent.mkdir()
    second.write_bytes(os.urandom(10))
    ids["passport (2)"] = docs.upload(case_id, second, doc_type="passport").id
    docs.grant(ids["passport (2)"], counsel.account.id)
    stored = bytearray(read_object(app, minio, ids["tampered.pdf"]))
    stored[5] ^= 1
    replace_object(app, minio, ids["tampered.pdf"], bytes(stored))

    listed = _run(live_server, counsel, "list", case_id)
    assert listed.exit_code == 0, listed.output  # records verify; content is checked on pull
    assert "passport.pdf" in listed.output and "signature ok" in listed.output
    assert "not shared" not in listed.output

    out = tmp_path / "pulled"
    result = _run(live_server, counsel, "pull", case_id, "--out", str(out))
    assert result.exit_code == 1, result.output
    assert ids["tampered.pdf"] in result.output and "tampered.pdf" in result.output
    expected = {
        "passport.pdf": files["passport.pdf"],
        "passport (2).pdf": second.read_bytes(),
        "hidden birth certificate.png": files[".hidden birth certificate.png"],
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*expected, "manifest.json", "SHA256SUMS"]
    )
    for name, data in expected.items():
        assert (out / name).read_bytes() == data
    manifest = json.loads((out / "manifest.json").read_text())
    by_file = {e["file"]: e for e in manifest["documents"]}
    assert set(by_file) == set(expected)
    for name, data in expected.items():
        assert by_file[name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert by_file[name]["uploaded_by"] == survivor.account.username  # type: ignore[union-attr]
    assert len(manifest["refused"]) == 1 and ids["tampered.pdf"] in manifest["refused"][0]
    sums = (out / "SHA256SUMS").read_text().splitlines()
    assert f"{hashlib.sha256(files['passport.pdf']).hexdigest()}  passport.pdf" in sums

    # A second pull into the same folder keeps the verified files and adds no copies; it
    # removes what an interrupted pull left behind.
    (out / ".haven-interrupted.partial").write_bytes(b"half a file")
    again = _run(live_server, counsel, "pull", case_id, "--out", str(out))
    assert again.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*expected, "manifest.json", "SHA256SUMS"]
    )


def test_list_without_a_case_shows_my_cases(pair: Pair, live_server: LiveServer) -> None:
    _, counsel, case_id = pair
    result = _run(live_server, counsel, "list")
    assert result.exit_code == 0, result.output
    assert case_id in result.output


def test_wrong_passphrase_is_a_clear_error(pair: Pair, live_server: LiveServer) -> None:
    _, counsel, case_id = pair
    assert counsel.account is not None
    env = {
        "HAVEN_URL": live_server.url,
        "HAVEN_UNWITNESSED": "true",
        "HAVEN_USERNAME": counsel.account.username,
        "HAVEN_PASSPHRASE": "not the passphrase at all",
    }
    result = CliRunner(env=env).invoke(main, ["docs", "list", case_id])
    assert result.exit_code != 0
    assert "sign-in failed" in result.output


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("passport.pdf", "passport.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        (".bashrc", "bashrc"),
        ("..", "document-X"),
        ("line\nbreak\u202e.pdf", "linebreak.pdf"),
        ("é" * 150, "é" * 100),
    ],
)
def test_file_names_stay_inside_the_output_folder(name: str, safe: str) -> None:
    assert safe_file_name(name, "X") == safe
