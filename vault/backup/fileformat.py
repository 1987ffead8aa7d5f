"""The backup file (docs/protocol.md §27): a clear header, then one secretstream.

header = "HAVEN-BACKUP" || 0x01 (format) || kind (0x01 data, 0x02 keys)
         || backup public key (32) || crypto_box_seal(stream key, backup public key) (80)
         || secretstream header (24)
Then ciphertext chunks of 64 KiB of plaintext each (the last one shorter and tagged
FINAL), each with the whole header as associated data. The plaintext is a sequence of
records: type (1 byte) || u64 length || payload.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.utils

from vault.protocol.encoding import EncodingError, b64decode, b64encode

MAGIC = b"HAVEN-BACKUP"
FORMAT_V1 = 1
KIND_DATA = 1
KIND_KEYS = 2
KINDS = {KIND_DATA: "data", KIND_KEYS: "keys"}
PUBLIC_KEY_BYTES = sodium.crypto_box_PUBLICKEYBYTES  # 32
SEALED_KEY_BYTES = (
    sodium.crypto_box_SEALBYTES + sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
)
STREAM_HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES  # 24
HEADER_BYTES = len(MAGIC) + 2 + PUBLIC_KEY_BYTES + SEALED_KEY_BYTES + STREAM_HEADER_BYTES
CHUNK_BYTES = 64 * 1024
CHUNK_OVERHEAD = sodium.crypto_secretstream_xchacha20poly1305_ABYTES  # 17
TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL

# Record types.
MANIFEST = 0x01
TABLE = 0x02
ROW = 0x03
OBJECT = 0x04
KEY = 0x05
END = 0x06
RECORD_HEAD = struct.Struct(">BQ")


class BackupError(RuntimeError):
    """The backup file is not one, is truncated, was altered, or needs another key."""


def generate_keypair() -> tuple[bytes, bytes]:
    """A fresh X25519 backup key pair (public, secret)."""
    secret = nacl.public.PrivateKey.generate()
    return bytes(secret.public_key), bytes(secret)


def parse_public_key(text: str) -> bytes:
    """A backup public key from its base64url form."""
    try:
        key = b64decode(text.strip())
    except EncodingError as exc:
        raise BackupError("the backup public key is not base64url") from exc
    if len(key) != PUBLIC_KEY_BYTES:
        raise BackupError(f"the backup public key must be {PUBLIC_KEY_BYTES} bytes")
    return key


def read_secret_key(path: str) -> bytes:
    """The backup secret key from a file holding its base64url form."""
    try:
        key = b64decode(Path(path).read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, EncodingError) as exc:
        raise BackupError(f"cannot read a backup secret key from {path}") from exc
    if len(key) != PUBLIC_KEY_BYTES:
        raise BackupError(f"{path} does not hold a {PUBLIC_KEY_BYTES}-byte secret key")
    return key


def fingerprint(public_key: bytes) -> str:
    """A short name for a backup key, to tell keys apart in messages."""
    return b64encode(public_key)[:12]


class Writer:
    """Encrypts records into a backup file; ``close`` writes the FINAL chunk."""

    def __init__(self, out: BinaryIO, kind: int, public_key: bytes) -> None:
        self.out = out
        stream_key = sodium.crypto_secretstream_xchacha20poly1305_keygen()
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        stream_header = sodium.crypto_secretstream_xchacha20poly1305_init_push(
            self._state, stream_key
        )
        sealed = sodium.crypto_box_seal(stream_key, public_key)
        self.header = MAGIC + bytes([FORMAT_V1, kind]) + public_key + sealed + stream_header
        out.write(self.header)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.written = len(self.header)

    def record(self, kind: int, payload: bytes) -> None:
        """Write one whole record."""
        self.write(RECORD_HEAD.pack(kind, len(payload)))
        self.write(payload)

    def begin(self, kind: int, length: int) -> None:
        """Start a record whose ``length`` payload bytes follow through ``write``."""
        self.write(RECORD_HEAD.pack(kind, length))

    def write(self, data: bytes) -> None:
        """Add plaintext; full chunks are encrypted and written at once."""
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes <= CHUNK_BYTES:
            return
        joined = memoryview(b"".join(self._pending))
        cut = (len(joined) - 1) // CHUNK_BYTES * CHUNK_BYTES  # keep at least one byte
        for start in range(0, cut, CHUNK_BYTES):
            self._push(bytes(joined[start : start + CHUNK_BYTES]), TAG_MESSAGE)
        rest = bytes(joined[cut:])
        self._pending = [rest]
        self._pending_bytes = len(rest)

    def close(self) -> None:
        """Encrypt what is left as the FINAL chunk and flush."""
        self._push(b"".join(self._pending), TAG_FINAL)
        self._pending = []
        self.out.flush()

    def _push(self, chunk: bytes, tag: int) -> None:
        box = sodium.crypto_secretstream_xchacha20poly1305_push(
            self._state, chunk, self.header, tag
        )
        self.out.write(box)
        self.written += len(box)


class Reader:
    """Decrypts a backup file and yields its records, refusing any altered byte."""

    def __init__(self, src: BinaryIO, secret_key: bytes) -> None:
        self.src = src
        header = src.read(HEADER_BYTES)
        if len(header) < len(MAGIC) + 2 or header[: len(MAGIC)] != MAGIC:
            raise BackupError("this is not a Haven backup file")
        if header[len(MAGIC)] != FORMAT_V1:
            raise BackupError(f"unknown backup format {header[len(MAGIC)]}")
        if len(header) < HEADER_BYTES:
            raise BackupError("the backup file is truncated (incomplete header)")
        self.kind = header[len(MAGIC) + 1]
        if self.kind not in KINDS:
            raise BackupError(f"unknown backup kind {self.kind}")
        at = len(MAGIC) + 2
        self.public_key = header[at : at + PUBLIC_KEY_BYTES]
        sealed = header[at + PUBLIC_KEY_BYTES : at + PUBLIC_KEY_BYTES + SEALED_KEY_BYTES]
        mine = sodium.crypto_scalarmult_base(secret_key)
        if mine != self.public_key:
            raise BackupError(
                f"wrong backup key: this file is sealed to key {fingerprint(self.public_key)},"
                f" the key given is {fingerprint(mine)}"
            )
        try:
            stream_key = sodium.crypto_box_seal_open(sealed, self.public_key, secret_key)
        except nacl.exceptions.CryptoError as exc:
            raise BackupError("the backup header was altered (its key does not open)") from exc
        self.header = header
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(
            self._state, header[-STREAM_HEADER_BYTES:], stream_key
        )
        self._chunk = b""
        self._at = 0
        self._final = False
        self.chunks = 0
        self.read_bytes = HEADER_BYTES

    def _next_chunk(self) -> None:
        if self._final:
            raise BackupError("the backup's records run past its final chunk")
        box = self.src.read(CHUNK_BYTES + CHUNK_OVERHEAD)
        self.read_bytes += len(box)
        if len(box) < CHUNK_OVERHEAD:
            raise BackupError(
                f"the backup file is truncated (it ends at chunk {self.chunks} without its"
                " final tag)"
            )
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                self._state, box, self.header
            )
        except nacl.exceptions.CryptoError as exc:
            if len(box) < CHUNK_BYTES + CHUNK_OVERHEAD:  # a short chunk: the file's last
                raise BackupError(
                    f"the backup file is truncated or was altered (its last chunk, {self.chunks},"
                    " does not verify)"
                ) from exc
            raise BackupError(
                f"the backup file was altered or damaged (chunk {self.chunks} does not verify)"
            ) from exc
        self.chunks += 1
        if tag == TAG_FINAL:
            self._final = True
            if self.src.read(1):
                raise BackupError("the backup file has bytes after its final chunk")
        elif tag != TAG_MESSAGE:
            raise BackupError(f"chunk {self.chunks} has an unexpected secretstream tag")
        elif len(box) != CHUNK_BYTES + CHUNK_OVERHEAD:
            raise BackupError("the backup file is truncated (a short chunk is not final)")
        self._chunk = plain
        self._at = 0

    def read(self, count: int) -> bytes:
        """Exactly ``count`` plaintext bytes."""
        return b"".join(self.pieces(count))

    def pieces(self, count: int) -> Iterator[bytes]:
        """``count`` plaintext bytes as a stream of pieces (bounded memory)."""
        while count:
            if self._at == len(self._chunk):
                self._next_chunk()
            piece = self._chunk[self._at : self._at + count]
            self._at += len(piece)
            count -= len(piece)
            yield piece

    def record(self) -> tuple[int, int]:
        """The next record's (type, payload length)."""
        kind, length = RECORD_HEAD.unpack(self.read(RECORD_HEAD.size))
        return int(kind), int(length)

    def finish(self) -> None:
        """Check that the END record closed the final chunk exactly."""
        if not self._final or self._at != len(self._chunk):
            raise BackupError("the backup file has records after its END record")
