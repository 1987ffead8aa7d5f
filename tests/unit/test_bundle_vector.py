"""The evidence-bundle vector (protocol §24.8): reproducible, verifies, and one changed byte
in any part fails with that part's name — with no server and no network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.vectors import bundle as vector
from vault.client.verify import verify_bundle

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
