"""The committed test vectors match the reference implementation, value by value."""

from __future__ import annotations

import json

import pytest

from tests.vectors import generate
from vault.protocol import documents as pdoc
from vault.protocol import keys as pkeys
from vault.protocol import messages as pmsg
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


def test_metadata_frame_of_exactly_one_block_gets_no_padding() -> None:
    data = json.loads((generate.HERE / "documents.json").read_text())
    full, meta = data["metadata_full_block"], data["metadata"]
    plain = b64decode(full["plaintext"])
    fields, rest = pdoc.parse_frame(plain, pdoc.LABEL_INFO, 6)
    assert len(plain) == full["plaintext_bytes"] == pdoc.METADATA_BLOCK
    assert rest == b""
    assert fields[0] == full["name"].encode()
    envelope = b64decode(full["envelope"])
    assert len(envelope) == pdoc.METADATA_OVERHEAD + pdoc.METADATA_BLOCK == 297
    assert envelope[1 : 1 + pdoc.NONCE_BYTES] == b64decode(full["nonce"])
    info = pdoc.open_metadata(
        envelope,
        b64decode(data["file_key"]["file_key"]),
        b64decode(meta["document_id"]),
        meta["case_id"],
        meta["uploader_id"],
        b64decode(data["signature"]["content_header"]),
    )
    assert info.name == full["name"]
    assert info.encode() == plain


def test_message_text_of_exactly_one_block_takes_a_second_block() -> None:
    envelopes = json.loads((generate.HERE / "messages.json").read_text())["envelopes"]
    case = next(e for e in envelopes if e["label"] == "exactly 256 bytes")
    text = case["text"].encode()
    padded = b64decode(case["padded_plaintext"])
    assert len(text) == pmsg.PAD_BLOCK
    assert len(padded) == 2 * pmsg.PAD_BLOCK
    assert padded == text + b"\x80" + bytes(pmsg.PAD_BLOCK - 1)
    assert len(b64decode(case["envelope"]["body"])) == 1 + 24 + 2 * pmsg.PAD_BLOCK + 16
