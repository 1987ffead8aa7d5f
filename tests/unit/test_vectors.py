"""The committed test vectors match the reference implementation, value by value."""

from __future__ import annotations

import json

import pytest

from tests.vectors import generate
from vault.protocol import keys as pkeys
from vault.protocol.encoding import b64decode


@pytest.mark.parametrize("name", sorted(generate.GENERATORS))
def test_committed_vectors_are_what_the_generator_produces(name: str) -> None:
    committed = (generate.HERE / f"{name}.json").read_text(encoding="utf-8")
    assert committed == generate.render(name)


def test_key_bundle_vector_decrypts_to_its_keys() -> None:
    data = json.loads((generate.HERE / "accounts.json").read_text())["key_bundle"]
    keys = pkeys.unwrap_bundle(
        b64decode(data["wrapped"]), data["username"], 1, b64decode(data["wrap_key"])
    )
    assert keys.x25519_secret == b64decode(data["x25519_secret"])
    assert keys.ed25519_seed == b64decode(data["ed25519_seed"])
    with pytest.raises(pkeys.ProtocolError):
        pkeys.unwrap_bundle(
            b64decode(data["wrapped"]), "someone.else", 1, b64decode(data["wrap_key"])
        )


def test_public_key_vector_verifies() -> None:
    data = json.loads((generate.HERE / "accounts.json").read_text())["public_keys"]
    record = pkeys.PublicKeys(
        1, b64decode(data["x25519"]), b64decode(data["ed25519"]), b64decode(data["signature"])
    )
    record.verify(data["username"])
    with pytest.raises(pkeys.ProtocolError):
        record.verify("another.name")
