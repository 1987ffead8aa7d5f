"""The evidence-bundle vector (protocol §24.8): reproducible, verifies, and one changed byte
in any part fails with that part's name — with no server and no network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.vectors import bundle as vector
from vault.cli import main
from vault.client.verify import verify_bundle
from vault.protocol import checkpoint as cp
from vault.protocol import transparency as kt
from vault.protocol.encoding import b64encode

WITNESS_NAME = vector.WITNESS
EXPECTED = json.loads((vector.OUT.parent / "bundle.expected.json").read_text(encoding="utf-8"))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_the_committed_vector_is_what_the_script_makes(tmp_path: Path) -> None:
    assert vector.build(tmp_path / "bundle") == EXPECTED
    assert _files(tmp_path / "bundle") == _files(vector.OUT)


def test_the_vector_verifies() -> None:
    result = verify_bundle(vector.OUT)
    assert [str(f) for f in result.failures] == EXPECTED["failures"]
    assert any("SHA-256" in line for line in result.checked)


@pytest.mark.parametrize("path", sorted(EXPECTED["tampered"]))
def test_one_changed_byte_names_its_part(path: str, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(vector.OUT, copy)
    data = bytearray((copy / path).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / path).write_bytes(bytes(data))
    failures = verify_bundle(copy).failures
    assert {f.part for f in failures} == {EXPECTED["tampered"][path]}, failures


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
