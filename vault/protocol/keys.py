"""Account key pairs, key bundles, public key records and recovery keys."""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.signing
import nacl.utils

from vault.protocol.encoding import frame, u32

FORMAT_V1 = 1
NONCE_BYTES = 24
TAG_BYTES = 16
BUNDLE_PLAINTEXT_BYTES = 1 + 32 + 32
WRAPPED_BUNDLE_BYTES = 1 + NONCE_BYTES + BUNDLE_PLAINTEXT_BYTES + TAG_BYTES
RECOVERY_KEY_BYTES = 32
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")

LABEL_BUNDLE = "haven/v1/key-bundle"
LABEL_PUBKEYS = "haven/v1/public-keys"


class ProtocolError(ValueError):
    """Raised when an envelope fails to parse, authenticate or verify."""


def normalize_username(username: str) -> str:
    """NFKC-normalise and lower-case a username, then check its shape."""
    name = unicodedata.normalize("NFKC", username).strip().lower()
    if not USERNAME_RE.match(name):
        raise ProtocolError(
            "username must be 3-32 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit (usernames are compared exactly; letters of "
            "other scripts that look like Latin ones would let one person pose as another)"
        )
    return name


@dataclass(frozen=True)
class KeyPairs:
    """An account's private keys for one key version."""

    version: int
    x25519_secret: bytes
    ed25519_seed: bytes

    @classmethod
    def generate(cls, version: int = 1) -> KeyPairs:
        """Create fresh X25519 and Ed25519 key pairs."""
        return cls(
            version=version,
            x25519_secret=bytes(nacl.public.PrivateKey.generate()),
            ed25519_seed=bytes(nacl.signing.SigningKey.generate()),
        )

    @property
    def box_key(self) -> nacl.public.PrivateKey:
        """The X25519 private key."""
        return nacl.public.PrivateKey(self.x25519_secret)

    @property
    def signing_key(self) -> nacl.signing.SigningKey:
        """The Ed25519 signing key."""
        return nacl.signing.SigningKey(self.ed25519_seed)

    def public(self, username: str) -> PublicKeys:
        """The self-signed public key record for this version."""
        x_pk = bytes(self.box_key.public_key)
        ed_pk = bytes(self.signing_key.verify_key)
        message = public_keys_message(username, self.version, x_pk, ed_pk)
        signature = self.signing_key.sign(message).signature
        return PublicKeys(self.version, x_pk, ed_pk, signature)


@dataclass(frozen=True)
class PublicKeys:
    """A published, self-signed public key record."""

    version: int
    x25519: bytes
    ed25519: bytes
    signature: bytes

    def verify(self, username: str) -> None:
        """Check lengths and the Ed25519 self-signature binding both keys to the username."""
        if len(self.x25519) != 32 or len(self.ed25519) != 32 or len(self.signature) != 64:
            raise ProtocolError("public key record has wrong lengths")
        if not 1 <= self.version <= 2**31:
            raise ProtocolError("key version out of range")
        message = public_keys_message(username, self.version, self.x25519, self.ed25519)
        try:
            nacl.signing.VerifyKey(self.ed25519).verify(message, self.signature)
        except (nacl.exceptions.BadSignatureError, ValueError) as exc:
            raise ProtocolError("public key self-signature does not verify") from exc


def public_keys_message(username: str, version: int, x25519: bytes, ed25519: bytes) -> bytes:
    """The exact bytes an account signs to publish its keys."""
    return frame(LABEL_PUBKEYS, username.encode("utf-8"), u32(version), x25519, ed25519)


def bundle_ad(username: str, version: int) -> bytes:
    """Associated data that binds a wrapped key bundle to its owner and key version."""
    return frame(LABEL_BUNDLE, username.encode("utf-8"), u32(version))


def wrap_bundle(
    keys: KeyPairs, username: str, wrap_key: bytes, nonce: bytes | None = None
) -> bytes:
    """Encrypt the private keys under a wrapping key (XChaCha20-Poly1305 IETF)."""
    nonce = nacl.utils.random(NONCE_BYTES) if nonce is None else nonce
    plaintext = bytes([FORMAT_V1]) + keys.x25519_secret + keys.ed25519_seed
    ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, bundle_ad(username, keys.version), nonce, wrap_key
    )
    return bytes([FORMAT_V1]) + nonce + ct


def unwrap_bundle(blob: bytes, username: str, version: int, wrap_key: bytes) -> KeyPairs:
    """Decrypt a wrapped key bundle, refusing anything that does not authenticate."""
    if len(blob) != WRAPPED_BUNDLE_BYTES or blob[0] != FORMAT_V1:
        raise ProtocolError("wrapped key bundle has the wrong format")
    nonce, ct = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ct, bundle_ad(username, version), nonce, wrap_key
        )
    except nacl.exceptions.CryptoError as exc:
        raise ProtocolError("key bundle does not decrypt: wrong passphrase or key") from exc
    if plain[0] != FORMAT_V1:
        raise ProtocolError("key bundle has an unknown inner format")
    return KeyPairs(version=version, x25519_secret=plain[1:33], ed25519_seed=plain[33:65])


def generate_recovery_key() -> bytes:
    """Create a fresh 32-byte recovery key."""
    return nacl.utils.random(RECOVERY_KEY_BYTES)


def format_recovery_key(key: bytes) -> str:
    """Render a recovery key as 13 groups of four RFC 4648 base32 characters."""
    text = base64.b32encode(key).decode("ascii").rstrip("=")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_recovery_key(text: str) -> bytes:
    """Parse a typed recovery key, ignoring case, spaces and dashes."""
    cleaned = re.sub(r"[\s-]", "", text).upper()
    if len(cleaned) != 52 or not re.fullmatch(r"[A-Z2-7]+", cleaned):
        raise ProtocolError("a recovery key is 52 characters from A-Z and 2-7")
    key = base64.b32decode(cleaned + "====")
    if format_recovery_key(key).replace("-", "") != cleaned:
        raise ProtocolError("recovery key is not canonical")
    return key
