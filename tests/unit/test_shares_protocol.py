"""Split recovery's pure pieces (protocol §22): Shamir, payloads, printed shares, signatures."""

from __future__ import annotations

import os

import nacl.signing
import pytest

from vault.protocol import shares as pshares
from vault.protocol.keys import ProtocolError


def test_any_two_of_three_shares_rebuild_the_key_and_one_does_not() -> None:
    """Any pair rebuilds the key; a share twice or a short share is refused."""
    key = os.urandom(32)
    parts = pshares.split_secret(key)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert pshares.combine_shares([parts[i], parts[j]]) == key
    with pytest.raises(ProtocolError):
        pshares.combine_shares([parts[0], parts[0]])
    with pytest.raises(ProtocolError):
        pshares.combine_shares([parts[0][:-2] + parts[0][-1:], parts[1]])


def test_printed_share_round_trips_and_refuses_other_text() -> None:
    """The printed form reads back ignoring case and dashes; another shape is refused."""
    payload = pshares.SharePayload(os.urandom(16), 3, pshares.split_secret(os.urandom(32))[2])
    text = pshares.format_printed(payload)
    assert pshares.parse_printed(text.lower().replace("-", " ")) == payload
    for bad in (text[:-1], "HS2" + text[3:], text[:-1] + "1"):
        with pytest.raises(ProtocolError):
            pshares.parse_printed(bad)


def test_setup_signature_binds_name_version_and_commitments() -> None:
    """A setup verifies under its signer only for the same name, version and commitments."""
    signer = nacl.signing.SigningKey.generate()
    setup_id, commitments = os.urandom(16), [os.urandom(32), os.urandom(32)]
    message = pshares.setup_message("amira.k", setup_id, 2, commitments)
    sig = signer.sign(message).signature
    pk = bytes(signer.verify_key)
    pshares.verify_setup(pk, "amira.k", setup_id, 2, commitments, sig)
    for name, version, cs in (
        ("someone.else", 2, commitments),
        ("amira.k", 1, commitments),
        ("amira.k", 2, commitments[::-1]),
    ):
        with pytest.raises(ProtocolError):
            pshares.verify_setup(pk, name, setup_id, version, cs, sig)
