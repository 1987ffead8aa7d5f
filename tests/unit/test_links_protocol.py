"""Outside-link format (protocol §23): the vectors open, and every alteration is refused."""

from __future__ import annotations

import json

import nacl.public
import pytest

from tests.vectors import generate
from vault.protocol import links as plink
from vault.protocol.encoding import b64decode
from vault.protocol.kdf import KdfParams
from vault.protocol.keys import ProtocolError

VECTORS = json.loads((generate.HERE / "links.json").read_text(encoding="utf-8"))


def _keys(passphrase: str) -> plink.LinkKeys:
    kdf = VECTORS["with_passphrase"]["kdf"]
    params = KdfParams(b64decode(kdf["salt"]), kdf["opslimit"], kdf["memlimit"], kdf["alg"])
    return plink.link_keys(b64decode(VECTORS["secret"]), passphrase, params)


def test_vector_envelope_opens_with_the_passphrase_only() -> None:
    lookup = b64decode(VECTORS["lookup_id"])
    envelope = b64decode(VECTORS["envelope"]["sealed_with_passphrase"])
    contents = plink.open_envelope(
        envelope, _keys(VECTORS["with_passphrase"]["passphrase"]), lookup
    )
    assert contents.case_id == VECTORS["envelope"]["case_id"]
    assert [(d, k) for d, k in contents.files] == [
        (b64decode(x["id"]), b64decode(x["file_key"])) for x in VECTORS["envelope"]["documents"]
    ]
    with pytest.raises(ProtocolError, match="wrong passphrase"):
        plink.open_envelope(envelope, _keys("another passphrase entirely"), lookup)
    with pytest.raises(ProtocolError):
        plink.open_envelope(envelope, _keys(VECTORS["with_passphrase"]["passphrase"]), bytes(32))
    flipped = bytearray(envelope)
    flipped[-1] ^= 1
    with pytest.raises(ProtocolError):
        plink.open_envelope(bytes(flipped), _keys(VECTORS["with_passphrase"]["passphrase"]), lookup)


def test_link_url_round_trip_and_refusals() -> None:
    secret = b64decode(VECTORS["secret"])
    assert plink.parse_link_url(f"https://haven.example/app/#{VECTORS['fragment']}") == secret
    for bad in ("https://haven.example/app/", "https://x/app/#link=AAAA", "#link=" + "A" * 44):
        with pytest.raises(ValueError):
            plink.parse_link_url(bad)


def test_label_opens_for_its_reader_only() -> None:
    mine, other = nacl.public.PrivateKey.generate(), nacl.public.PrivateKey.generate()
    sealed = plink.seal_label(VECTORS["label"]["recipient"], bytes(mine.public_key), 3)
    assert len(sealed) == plink.SEALED_LABEL_BYTES
    name = plink.open_label(sealed, bytes(mine.public_key), bytes(mine), 3)
    assert name == VECTORS["label"]["recipient"]
    with pytest.raises(ProtocolError):
        plink.open_label(sealed, bytes(other.public_key), bytes(other), 3)
    with pytest.raises(ProtocolError):
        plink.open_label(sealed, bytes(mine.public_key), bytes(mine), 2)
    with pytest.raises(ProtocolError):
        plink.seal_label("x" * 65, bytes(mine.public_key), 1)
