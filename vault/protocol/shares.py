"""Split recovery (protocol §22): Shamir 2-of-3 over the recovery key, share envelopes,
commitments, the setup signature, the printed share and the recovery request key.

Shamir splitting is pyshamir's port of HashiCorp Vault's shamir (GF(2^8), a share is the
y-bytes followed by its x-byte), the same format as the audited ``shamir-secret-sharing``
npm package the web client uses; tests/vectors/shares.json proves the two agree.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.hash
import nacl.public
import nacl.signing
import pyshamir

from vault.protocol.encoding import frame, u32
from vault.protocol.kdf import derive_subkey
from vault.protocol.keys import RECOVERY_KEY_BYTES, ProtocolError

SECRET_BYTES = RECOVERY_KEY_BYTES
SHARE_BYTES = SECRET_BYTES + 1  # y-bytes || x-byte
SETUP_ID_BYTES = 16
PAYLOAD_VERSION = 0x01
PAYLOAD_BYTES = 1 + SETUP_ID_BYTES + 1 + SHARE_BYTES  # 51
SEALED_PAYLOAD_BYTES = PAYLOAD_BYTES + nacl.bindings.crypto_box_SEALBYTES  # 99
COMMITMENT_BYTES = 32
HELD_SLOTS = (2, 3)  # slot 1 is the survivor's own recovery key and is never stored
LABEL_SHARE = "haven/v1/recovery-share"
LABEL_SETUP = "haven/v1/recovery-setup"
CTX_REQUEST = b"haven-sr"
PRINTED_PREFIX = "HS1"
_BASE32 = re.compile(r"^[A-Z2-7]+$")


def split_secret(secret: bytes) -> list[bytes]:
    """Split a 32-byte recovery key into three shares, any two of which rebuild it."""
    if len(secret) != SECRET_BYTES:
        raise ProtocolError("the recovery key is 32 bytes")
    return [bytes(part) for part in pyshamir.split(secret, 3, 2)]


def combine_shares(shares: list[bytes]) -> bytes:
    """Rebuild the recovery key from two shares with distinct x-bytes."""
    if len(shares) != 2 or any(len(s) != SHARE_BYTES for s in shares):
        raise ProtocolError("two shares of 33 bytes are needed")
    if shares[0][-1] == shares[1][-1] or 0 in (shares[0][-1], shares[1][-1]):
        raise ProtocolError("the shares must have distinct, non-zero x-bytes")
    return bytes(pyshamir.combine([bytearray(s) for s in shares]))


def commitment(username: str, setup_id: bytes, slot: int, share: bytes) -> bytes:
    """BLAKE2b-256 binding a share to its account, setup and slot."""
    data = frame(LABEL_SHARE, username.encode("utf-8"), setup_id, bytes([slot]), share)
    return nacl.hash.blake2b(data, digest_size=COMMITMENT_BYTES, encoder=nacl.encoding.RawEncoder)


def setup_message(
    username: str, setup_id: bytes, key_version: int, commitments: list[bytes]
) -> bytes:
    """What the survivor signs: her name, the setup, her key version and both commitments."""
    parts = [bytes([slot]) + c for slot, c in zip(HELD_SLOTS, commitments, strict=True)]
    return frame(LABEL_SETUP, username.encode("utf-8"), setup_id, u32(key_version), *parts)


def verify_setup(
    ed25519: bytes,
    username: str,
    setup_id: bytes,
    key_version: int,
    commitments: list[bytes],
    signature: bytes,
) -> None:
    """Check the survivor's signature over a setup; ProtocolError if it does not hold."""
    message = setup_message(username, setup_id, key_version, commitments)
    try:
        nacl.signing.VerifyKey(ed25519).verify(message, signature)
    except nacl.exceptions.BadSignatureError as exc:
        raise ProtocolError("the recovery setup's signature does not verify") from exc


@dataclass(frozen=True)
class SharePayload:
    """One share with the setup and slot it belongs to."""

    setup_id: bytes
    slot: int
    share: bytes

    def encode(self) -> bytes:
        """0x01 || setup_id (16) || slot (1) || share (33): 51 bytes."""
        return bytes([PAYLOAD_VERSION]) + self.setup_id + bytes([self.slot]) + self.share

    @classmethod
    def decode(cls, data: bytes) -> SharePayload:
        """Parse a payload; refuse any other length, version or slot."""
        if len(data) != PAYLOAD_BYTES or data[0] != PAYLOAD_VERSION:
            raise ProtocolError("not a version-1 share payload")
        slot = data[1 + SETUP_ID_BYTES]
        if slot not in HELD_SLOTS:
            raise ProtocolError("a share payload names slot 2 or 3")
        return cls(data[1 : 1 + SETUP_ID_BYTES], slot, data[2 + SETUP_ID_BYTES :])

    def seal(self, x25519_public: bytes) -> bytes:
        """The payload in a sealed box to a holder's or a recovery request's key."""
        return bytes(
            nacl.public.SealedBox(nacl.public.PublicKey(x25519_public)).encrypt(self.encode())
        )


def open_payload(sealed: bytes, x25519_secret: bytes) -> SharePayload:
    """Open a sealed share payload with an X25519 secret key."""
    try:
        plain = nacl.public.SealedBox(nacl.public.PrivateKey(x25519_secret)).decrypt(sealed)
    except nacl.exceptions.CryptoError as exc:
        raise ProtocolError("the sealed share does not open with this key") from exc
    return SharePayload.decode(plain)


def format_printed(payload: SharePayload) -> str:
    """The share a trusted person keeps: 'HS1-' then the payload in base32, groups of 4."""
    text = base64.b32encode(payload.encode()).decode("ascii").rstrip("=")
    return "-".join([PRINTED_PREFIX] + [text[i : i + 4] for i in range(0, len(text), 4)])


def parse_printed(text: str) -> SharePayload:
    """Read a printed share, ignoring case, spaces and dashes; refuse non-canonical text."""
    compact = re.sub(r"[\s-]", "", text).upper()
    if not compact.startswith(PRINTED_PREFIX):
        raise ProtocolError("a printed share starts with HS1")
    body = compact[len(PRINTED_PREFIX) :]
    if len(body) != 82 or not _BASE32.match(body):
        raise ProtocolError("a printed share has 82 base32 characters after HS1")
    data = base64.b32decode(body + "======")
    if base64.b32encode(data).decode("ascii").rstrip("=") != body:
        raise ProtocolError("a printed share is not canonical base32")
    return SharePayload.decode(data)


def request_key(master: bytes) -> nacl.public.PrivateKey:
    """The X25519 key a recovery request's shares are sealed to (from the new passphrase's
    master key under the account's own KDF parameters)."""
    return nacl.public.PrivateKey(derive_subkey(master, 1, CTX_REQUEST))


def request_auth_key(master: bytes) -> bytes:
    """The subkey that proves the new passphrase to the server while a request waits."""
    return derive_subkey(master, 2, CTX_REQUEST)
