"""Anonymous intake (protocol §20): receipts, report keys, entries, proof of work."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.public
import nacl.signing
import nacl.utils
from mnemonic import Mnemonic

from vault.protocol.encoding import EncodingError, frame, u32, u64, unframe
from vault.protocol.kdf import DEFAULT_MEMLIMIT, DEFAULT_OPSLIMIT, KEY_BYTES, derive_subkey
from vault.protocol.keys import ProtocolError

FORMAT_V1 = 1
ID_BYTES = 16
REPORT_KEY_BYTES = 32
RECEIPT_WORDS = 12
RECEIPT_ENTROPY_BYTES = 16
NONCE_BYTES = 24
TAG_BYTES = 16
SEALED_KEY_BYTES = 1 + 4 + sodium.crypto_box_SEALBYTES + ID_BYTES + REPORT_KEY_BYTES
PAD_BLOCK = 256
MAX_ENTRY_PLAINTEXT = 64 * 1024
POW_CHALLENGE_BYTES = 32
POW_NONCE_BYTES = 8
REPORTER_VERSION = 0
REPORTER = "reporter"

CTX_RECEIPT = b"haven-ir"
LABEL_SALT = b"haven/v1/intake-receipt"
LABEL_LOOKUP = "haven/v1/intake-lookup"
LABEL_ENTRY_AD = "haven/v1/intake-entry"
LABEL_ENTRY_SIG = "haven/v1/intake-entry-signed"
LABEL_REPORT = "haven/v1/intake-report"
LABEL_MESSAGE = "haven/v1/intake-message"
LABEL_ATTACHMENT = "haven/v1/intake-attachment"
LABEL_SESSION = "haven/v1/intake-session"
DANGER = ("unknown", "no", "yes")

_WORDS = Mnemonic("english")


def receipt_salt() -> bytes:
    """The fixed Argon2id salt of every receipt: BLAKE2b-128 of the label."""
    return nacl.hash.blake2b(LABEL_SALT, digest_size=16, encoder=nacl.encoding.RawEncoder)


def new_receipt() -> str:
    """Twelve BIP-39 English words carrying 128 random bits (and a 4-bit checksum)."""
    return str(_WORDS.to_mnemonic(secrets.token_bytes(RECEIPT_ENTROPY_BYTES)))


def receipt_entropy(receipt: str) -> bytes:
    """The 16 bytes a typed receipt stands for; case and spacing are ignored."""
    words = receipt.lower().split()
    if len(words) != RECEIPT_WORDS or not all(w in _WORDS.wordlist for w in words):
        raise ProtocolError("a receipt is 12 words from the list")
    phrase = " ".join(words)
    if not _WORDS.check(phrase):
        raise ProtocolError("the receipt's words do not fit together; check each word")
    return bytes(_WORDS.to_entropy(phrase))


@dataclass(frozen=True)
class ReceiptKeys:
    """What a receipt derives: a box key pair (replies), a signing key pair (sessions)."""

    box_secret: bytes
    box_public: bytes
    sign_seed: bytes
    sign_public: bytes

    @property
    def lookup(self) -> bytes:
        """The report's lookup id, derived from the two public keys."""
        return lookup_id(self.box_public, self.sign_public)

    @property
    def signing_key(self) -> nacl.signing.SigningKey:
        """The Ed25519 signing key."""
        return nacl.signing.SigningKey(self.sign_seed)


def receipt_keys(
    receipt: str, opslimit: int = DEFAULT_OPSLIMIT, memlimit: int = DEFAULT_MEMLIMIT
) -> ReceiptKeys:
    """Derive the receipt's keys with the accounts' Argon2id parameters (§2.2, §20.2)."""
    seed = sodium.crypto_pwhash_alg(
        KEY_BYTES,
        receipt_entropy(receipt),
        receipt_salt(),
        opslimit,
        memlimit,
        sodium.crypto_pwhash_ALG_ARGON2ID13,
    )
    box_public, box_secret = sodium.crypto_box_seed_keypair(derive_subkey(seed, 1, CTX_RECEIPT))
    sign_seed = derive_subkey(seed, 2, CTX_RECEIPT)
    sign_public = bytes(nacl.signing.SigningKey(sign_seed).verify_key)
    return ReceiptKeys(box_secret, box_public, sign_seed, sign_public)


def lookup_id(box_public: bytes, sign_public: bytes) -> bytes:
    """BLAKE2b-256 of the framed public keys: how the server finds a report."""
    return nacl.hash.blake2b(
        frame(LABEL_LOOKUP, box_public, sign_public),
        digest_size=32,
        encoder=nacl.encoding.RawEncoder,
    )


def seal_report_key(report_id: bytes, report_key: bytes, version: int, public: bytes) -> bytes:
    """0x01 || u32(version) || crypto_box_seal(R || RK, public): one reader's copy of RK."""
    sealed = sodium.crypto_box_seal(report_id + report_key, public)
    return bytes([FORMAT_V1]) + u32(version) + sealed


def open_report_key(
    blob: bytes, report_id: bytes, version: int, public: bytes, secret: bytes
) -> bytes:
    """Open a sealed report key made for this reader, version and report."""
    if len(blob) != SEALED_KEY_BYTES or blob[0] != FORMAT_V1 or blob[1:5] != u32(version):
        raise ProtocolError("sealed report key has the wrong format or key version")
    try:
        plain = sodium.crypto_box_seal_open(blob[5:], public, secret)
    except nacl.exceptions.CryptoError as exc:
        raise ProtocolError("sealed report key does not open") from exc
    if plain[:ID_BYTES] != report_id:
        raise ProtocolError("sealed report key names another report")
    return bytes(plain[ID_BYTES:])


def sealed_key_version(blob: bytes) -> int:
    """The reader key version a sealed report key names (shape checked)."""
    if len(blob) != SEALED_KEY_BYTES or blob[0] != FORMAT_V1:
        raise ProtocolError("sealed report key has the wrong format")
    return int.from_bytes(blob[1:5], "big")


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % PAD_BLOCK)


def entry_ad(report_id: bytes, entry_id: bytes, author: str) -> bytes:
    """Associated data of an entry: report, entry id and author bound to the ciphertext."""
    return frame(LABEL_ENTRY_AD, report_id, entry_id, author.encode("ascii"))


@dataclass(frozen=True)
class Report:
    """The first entry: free text and the structured answers (all optional but the text)."""

    text: str
    language: str = ""
    contact_way: str = ""
    contact_time: str = ""
    danger: str = "unknown"


def report_plaintext(report: Report) -> bytes:
    """The framed first entry (before padding)."""
    if report.danger not in DANGER:
        raise ProtocolError("danger is unknown, no or yes")
    return frame(
        LABEL_REPORT,
        report.text.encode("utf-8"),
        report.language.encode("utf-8"),
        report.contact_way.encode("utf-8"),
        report.contact_time.encode("utf-8"),
        bytes([DANGER.index(report.danger)]),
    )


@dataclass(frozen=True)
class Attachment:
    """An attachment entry: what a reader needs to fetch, check and name the file (§20.11)."""

    id: bytes
    file_key: bytes
    header: bytes
    name: str
    mime_type: str
    size: int
    sha256: bytes


def attachment_plaintext(att: Attachment) -> bytes:
    """The framed attachment entry (before padding)."""
    if len(att.id) != ID_BYTES or len(att.file_key) != 32 or len(att.sha256) != 32:
        raise ProtocolError("an attachment names a 16-byte id, a 32-byte key and a SHA-256")
    return frame(
        LABEL_ATTACHMENT,
        att.id,
        att.file_key,
        att.header,
        att.name.encode("utf-8"),
        att.mime_type.encode("ascii"),
        u64(att.size),
        att.sha256,
    )


def attachment_stream_header(file_key: bytes, attachment_id: bytes) -> bytes:
    """The secretstream header of an attachment: BLAKE2b-192 keyed by its file key, of its id.

    Derived, not random, so that a client resuming an upload pushes byte for byte what it
    pushed before, and the key is used for no other stream."""
    return nacl.hash.blake2b(
        frame("haven/v1/intake-stream", attachment_id),
        key=file_key,
        digest_size=24,
        encoder=nacl.encoding.RawEncoder,
    )


def message_plaintext(text: str) -> bytes:
    """The framed later entry (a message of either side)."""
    return frame(LABEL_MESSAGE, text.encode("utf-8"))


def seal_entry(
    report_key: bytes,
    report_id: bytes,
    entry_id: bytes,
    author: str,
    plaintext: bytes,
    nonce: bytes | None = None,
) -> bytes:
    """0x01 || nonce || XChaCha20-Poly1305(pad256(plaintext), entry_ad, RK)."""
    if len(plaintext) > MAX_ENTRY_PLAINTEXT:
        raise ProtocolError(f"an entry holds at most {MAX_ENTRY_PLAINTEXT} bytes")
    nonce = nacl.utils.random(NONCE_BYTES) if nonce is None else nonce
    ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        _pad(plaintext), entry_ad(report_id, entry_id, author), nonce, report_key
    )
    return bytes([FORMAT_V1]) + nonce + ct


def check_entry_shape(blob: bytes) -> None:
    """The server's check: format byte and a padded length within bounds."""
    body = len(blob) - 1 - NONCE_BYTES - TAG_BYTES
    if not blob or blob[0] != FORMAT_V1 or body < PAD_BLOCK or body % PAD_BLOCK:
        raise ProtocolError("an entry is 0x01, a nonce and a 256-byte padded ciphertext")
    if body > MAX_ENTRY_PLAINTEXT + PAD_BLOCK:
        raise ProtocolError("the entry is too large")


def open_entry(
    report_key: bytes, report_id: bytes, entry_id: bytes, author: str, blob: bytes
) -> Report | str | Attachment:
    """Decrypt an entry: the report (first entry) or a message's text."""
    check_entry_shape(blob)
    try:
        padded = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            blob[1 + NONCE_BYTES :],
            entry_ad(report_id, entry_id, author),
            blob[1 : 1 + NONCE_BYTES],
            report_key,
        )
    except nacl.exceptions.CryptoError as exc:
        raise ProtocolError("the entry does not decrypt") from exc
    return parse_entry(padded)


_FIELDS = {LABEL_REPORT: 5, LABEL_MESSAGE: 1, LABEL_ATTACHMENT: 7}


def _framed_length(data: bytes) -> tuple[str, int]:
    """The entry's label and where its frame ends (the rest is padding)."""
    label_len = int.from_bytes(data[0:4], "big")
    label = data[4 : 4 + label_len].decode("ascii", "replace")
    if label not in _FIELDS:
        raise ProtocolError("unknown entry")
    offset = 0
    for _ in range(1 + _FIELDS[label]):
        if offset + 4 > len(data):
            raise ProtocolError("truncated entry")
        offset += 4 + int.from_bytes(data[offset : offset + 4], "big")
    if offset > len(data):
        raise ProtocolError("truncated entry")
    return label, offset


def parse_entry(padded: bytes) -> Report | str | Attachment:
    """Parse a decrypted, padded entry; refuse non-zero padding or another shape."""
    label, end = _framed_length(padded)
    if any(padded[end:]):
        raise ProtocolError("non-zero bytes after the entry")
    data = padded[:end]
    try:
        if label == LABEL_REPORT:
            text, lang, way, time, danger = unframe(LABEL_REPORT, data, 5)
            if len(danger) != 1 or danger[0] >= len(DANGER):
                raise ProtocolError("danger is out of range")
            return Report(
                text.decode(), lang.decode(), way.decode(), time.decode(), DANGER[danger[0]]
            )
        if label == LABEL_ATTACHMENT:
            aid, key, header, name, mime, size, digest = unframe(LABEL_ATTACHMENT, data, 7)
            if len(aid) != ID_BYTES or len(key) != 32 or len(size) != 8 or len(digest) != 32:
                raise ProtocolError("malformed attachment entry")
            return Attachment(
                aid,
                key,
                header,
                name.decode(),
                mime.decode("ascii"),
                int.from_bytes(size, "big"),
                digest,
            )
        (text,) = unframe(LABEL_MESSAGE, data, 1)
        return text.decode()
    except (EncodingError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed entry: {exc}") from exc


def entry_signed(
    report_id: bytes, entry_id: bytes, author: str, key_version: int, blob: bytes
) -> bytes:
    """The bytes an entry's author signs."""
    return frame(
        LABEL_ENTRY_SIG, report_id, entry_id, author.encode("ascii"), u32(key_version), blob
    )


def verify_signature(public: bytes, message: bytes, signature: bytes) -> bool:
    """Ed25519 detached verification that never raises."""
    try:
        nacl.signing.VerifyKey(public).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


def session_signed(challenge: bytes, lookup: bytes) -> bytes:
    """The bytes a returning reporter signs to open an intake session."""
    return frame(LABEL_SESSION, challenge, lookup)


def leading_zero_bits(digest: bytes) -> int:
    """How many leading zero bits a digest has."""
    count = 0
    for byte in digest:
        if byte == 0:
            count += 8
            continue
        return count + 8 - byte.bit_length()
    return count


def pow_digest(challenge: bytes, nonce: bytes) -> bytes:
    """crypto_generichash(32, challenge || nonce)."""
    return nacl.hash.blake2b(challenge + nonce, digest_size=32, encoder=nacl.encoding.RawEncoder)


def pow_ok(challenge: bytes, nonce: bytes, difficulty: int) -> bool:
    """Whether BLAKE2b(challenge || nonce) starts with ``difficulty`` zero bits."""
    return len(nonce) == POW_NONCE_BYTES and (
        leading_zero_bits(pow_digest(challenge, nonce)) >= difficulty
    )


def solve_pow(challenge: bytes, difficulty: int) -> bytes:
    """Find an 8-byte nonce (a little-endian counter) meeting the difficulty."""
    counter = 0
    while True:
        nonce = counter.to_bytes(POW_NONCE_BYTES, "little")
        if pow_ok(challenge, nonce, difficulty):
            return nonce
        counter += 1
