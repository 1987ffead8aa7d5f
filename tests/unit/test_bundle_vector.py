"""The evidence-bundle vector (protocol §24.8): reproducible, verifies, and one changed byte
in any part fails with that part's name — with no server and no network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.vectors import bundle as vector
from vault.cli import main
from vault.client.verify import verify_bundle
from vault.protocol import bundle as pb
from vault.protocol import checkpoint as cp
from vault.protocol import transparency as kt
from vault.protocol.encoding import b64encode

WITNESS_NAME = vector.WITNESS
VECTORS = {
    "plaintext": (vector.OUT, "plaintext"),
    "ciphertext": (vector.OUT_CIPHERTEXT, "ciphertext"),
}


def _expected(folder: Path) -> dict[str, Any]:
    path = folder.with_name(f"{folder.name}.expected.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("mode", VECTORS)
def test_the_committed_vector_is_what_the_script_makes(mode: str, tmp_path: Path) -> None:
    folder, content = VECTORS[mode]
    assert vector.build(tmp_path / "bundle", content=content) == _expected(folder)
    assert _files(tmp_path / "bundle") == _files(folder)


@pytest.mark.parametrize("mode", VECTORS)
def test_the_vector_verifies(mode: str) -> None:
    folder, _ = VECTORS[mode]
    result = verify_bundle(folder)
    assert [str(f) for f in result.failures] == _expected(folder)["failures"]
    assert any("SHA-256" in line for line in result.checked)


@pytest.mark.parametrize(
    ("mode", "path"),
    [
        (mode, path)
        for mode, (folder, _) in VECTORS.items()
        for path in _expected(folder)["tampered"]
    ],
)
def test_one_changed_byte_names_its_part(mode: str, path: str, tmp_path: Path) -> None:
    folder, _ = VECTORS[mode]
    copy = tmp_path / "bundle"
    shutil.copytree(folder, copy)
    data = bytearray((copy / path).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / path).write_bytes(bytes(data))
    failures = verify_bundle(copy).failures
    assert {f.part for f in failures} == {_expected(folder)["tampered"][path]}, failures


def test_verify_takes_trust_anchors_got_elsewhere() -> None:
    """`haven verify --log-key/--witness`: the bundle's own anchors are replaced, and a
    bundle checked against keys it was not made with fails at its checkpoint."""
    right = b64encode(kt.log_public_key(vector.seed(1)))
    wrong = b64encode(kt.log_public_key(vector.seed(9)))
    stranger = cp.VerifierKey(
        WITNESS_NAME, cp.ALG_COSIGNATURE_V1, kt.log_public_key(vector.seed(8))
    )
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", str(vector.OUT), "--log-key", right])
    assert ok.exit_code == 0, ok.output
    for args in (["--log-key", wrong], ["--witness", stranger.encode()]):
        refused = runner.invoke(main, ["verify", str(vector.OUT), *args])
        assert refused.exit_code == 1 and "FAILED checkpoint " in refused.output, refused.output


def test_an_unwitnessed_export_verifies_by_the_log_signature_alone(tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(vector.OUT, copy)
    manifest = json.loads((copy / pb.MANIFEST).read_text(encoding="utf-8"))
    manifest["trust"].update(witnesses=[], quorum=0)
    raw = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
    (copy / pb.MANIFEST).write_bytes(raw)
    signature = pb.sign_manifest(raw, vector.keys(20).signing_key)
    (copy / pb.SIGNATURE).write_text(b64encode(signature), encoding="ascii")
    result = verify_bundle(copy)
    assert result.is_valid, result.failures
    assert "signed by the log alone" in result.checked[0]
