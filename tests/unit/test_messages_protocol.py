"""Message envelopes: every header field is bound, keys are per message, shapes are strict."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from tests.vectors import generate
from vault.client.messages import parse_envelope
from vault.protocol import keys as pkeys
from vault.protocol import messages as pmsg
from vault.protocol.encoding import b64decode, frame

ALICE = pkeys.KeyPairs.generate()
BOB = pkeys.KeyPairs.generate()
EVE = pkeys.KeyPairs.generate()
PUB = {
    "alice": ALICE.public("alice"),
    "bob": BOB.public("bob"),
    "eve": EVE.public("eve"),
}


def header(**changes: object) -> pmsg.Header:
    base = pmsg.Header(
        conversation_id="conv-1",
        message_id=bytes(range(16)),
        sender_id="alice",
        sender_key_version=1,
        sent_at=time.time_ns() // 1_000_000,
        ttl=0,
        recipients=(pmsg.Recipient("alice", 1), pmsg.Recipient("bob", 1)),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def compose(text: str = "meet at the clinic", **changes: object) -> pmsg.Envelope:
    h = header(**changes)
    return pmsg.compose(h, text, ALICE, {r.user_id: PUB[r.user_id].x25519 for r in h.recipients})


def test_every_recipient_and_only_they_can_read() -> None:
    envelope = compose()
    envelope.check()
    assert pmsg.open_envelope(envelope, "bob", BOB, PUB["alice"]) == "meet at the clinic"
    assert pmsg.open_envelope(envelope, "alice", ALICE, PUB["alice"]) == "meet at the clinic"
    with pytest.raises(pkeys.ProtocolError, match="not sealed to this account"):
        pmsg.open_envelope(envelope, "eve", EVE, PUB["alice"])
    # Eve holding Bob's slot still cannot open Bob's sealed key.
    with pytest.raises(pkeys.ProtocolError):
        pmsg.open_envelope(envelope, "bob", EVE, PUB["alice"])


def test_a_fresh_key_and_nonce_for_every_message() -> None:
    a, b = compose("same"), compose("same")
    assert a.body != b.body
    assert a.sealed_keys[1] != b.sealed_keys[1]
    key_a = pmsg.open_key(a.sealed_keys[1], BOB)
    key_b = pmsg.open_key(b.sealed_keys[1], BOB)
    assert key_a != key_b


@pytest.mark.parametrize(
    "change",
    [
        {"conversation_id": "conv-2"},
        {"message_id": bytes(16)},
        {"sent_at": 1},
        {"ttl": 3600},
        {"recipients": (pmsg.Recipient("alice", 1), pmsg.Recipient("bob", 2))},
        {"attachments": ("doc-1",)},
    ],
    ids=["conversation", "message id", "sent_at", "ttl", "recipient version", "attachments"],
)
def test_every_header_field_is_bound_by_signature_and_associated_data(
    change: dict[str, object],
) -> None:
    envelope = compose()
    moved = dataclasses.replace(envelope, header=dataclasses.replace(envelope.header, **change))  # type: ignore[arg-type]
    with pytest.raises(pkeys.ProtocolError, match="signature"):
        moved.verify(PUB["alice"])
    # Even re-signed by the sender, the body does not decrypt under another header.
    resigned = pmsg.sign(moved.header, moved.body, moved.sealed_keys, ALICE)
    bob = dataclasses.replace(BOB, version=resigned.header.recipients[1].key_version)
    with pytest.raises(pkeys.ProtocolError, match="does not decrypt"):
        pmsg.open_envelope(resigned, "bob", bob, PUB["alice"])


def test_forged_sender_does_not_verify() -> None:
    envelope = compose()
    with pytest.raises(pkeys.ProtocolError, match="signature"):
        envelope.verify(dataclasses.replace(PUB["eve"], version=1))
    by_eve = pmsg.sign(envelope.header, envelope.body, envelope.sealed_keys, EVE)
    with pytest.raises(pkeys.ProtocolError, match="signature"):
        by_eve.verify(PUB["alice"])


def test_sealed_keys_and_body_are_signed() -> None:
    envelope = compose()
    swapped = dataclasses.replace(envelope, sealed_keys=tuple(reversed(envelope.sealed_keys)))
    with pytest.raises(pkeys.ProtocolError):
        swapped.verify(PUB["alice"])
    body = bytearray(envelope.body)
    body[-1] ^= 1
    with pytest.raises(pkeys.ProtocolError):
        dataclasses.replace(envelope, body=bytes(body)).verify(PUB["alice"])


def test_signature_is_over_the_documented_frame() -> None:
    envelope = compose()
    expected = frame(
        "haven/v1/message", envelope.header.encode(), envelope.body, *envelope.sealed_keys
    )
    assert envelope.signed_message() == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"recipients": (pmsg.Recipient("bob", 1), pmsg.Recipient("alice", 1))}, "sorted"),
        ({"recipients": (pmsg.Recipient("alice", 1), pmsg.Recipient("alice", 1))}, "sorted"),
        ({"recipients": (pmsg.Recipient("bob", 1),)}, "sender must be one"),
        ({"recipients": (pmsg.Recipient("alice", 2), pmsg.Recipient("bob", 1))}, "own copy"),
        ({"recipients": ()}, "1 to 32"),
        ({"ttl": 60}, "ttl"),
        ({"message_id": bytes(15)}, "16 bytes"),
        ({"sent_at": -1}, "sent_at"),
        ({"sender_key_version": 0}, "out of range"),
        ({"conversation_id": ""}, "conversation id"),
        ({"attachments": ("b", "a")}, "attachments"),
    ],
)
def test_non_canonical_headers_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(pkeys.ProtocolError, match=message):
        header(**change).check()


def test_body_is_padded_so_lengths_hide_the_exact_size() -> None:
    sizes = {len(compose("x" * n).body) for n in range(0, 256)}
    assert sizes == {pmsg.MIN_BODY_BYTES}
    assert len(compose("x" * 256).body) == pmsg.MIN_BODY_BYTES + 256


def test_wrong_key_version_on_this_device_is_refused() -> None:
    envelope = compose()
    newer = dataclasses.replace(BOB, version=2)
    with pytest.raises(pkeys.ProtocolError, match="key version"):
        pmsg.open_envelope(envelope, "bob", newer, PUB["alice"])


def test_malformed_sealed_keys_and_bodies_are_refused() -> None:
    envelope = compose()
    with pytest.raises(pkeys.ProtocolError):
        dataclasses.replace(
            envelope, sealed_keys=(envelope.sealed_keys[0], b"\x02" + bytes(80))
        ).check()
    with pytest.raises(pkeys.ProtocolError):
        dataclasses.replace(envelope, body=b"\x01" + bytes(300)).check()
    with pytest.raises(pkeys.ProtocolError):
        pmsg.open_key(b"\x01" + bytes(80), BOB)


def test_digest_identifies_identical_envelopes() -> None:
    envelope = compose()
    assert envelope.digest() == dataclasses.replace(envelope).digest()
    assert envelope.digest() != compose().digest()


def test_message_vectors_verify_and_decrypt() -> None:
    data = json.loads((generate.HERE / "messages.json").read_text())
    sender = data["sender"]
    public = pkeys.PublicKeys(
        1, b64decode(sender["x25519"]), b64decode(sender["ed25519"]), b64decode(sender["signature"])
    )
    public.verify(sender["username"])
    for case in data["envelopes"]:
        envelope = parse_envelope(case["envelope"])
        assert envelope.header.encode() == b64decode(case["header"])
        assert envelope.signed_message() == b64decode(case["signed_message"])
        envelope.verify(public)
        for reader in data["recipients"]:
            keys = pkeys.KeyPairs(
                1, b64decode(reader["x25519_secret"]), b64decode(reader["ed25519_seed"])
            )
            text = pmsg.open_envelope(envelope, reader["user_id"], keys, public)
            assert text == case["text"]
            index = envelope.header.recipient_index(reader["user_id"])
            assert pmsg.open_key(envelope.sealed_keys[index], keys) == b64decode(
                case["message_key"]
            )
