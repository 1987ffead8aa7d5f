"""Canonical encodings: unpadded base64url and length-prefixed byte strings."""

from __future__ import annotations

import base64
import binascii
import re
import struct

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class EncodingError(ValueError):
    """Raised when bytes or text are not in the canonical encoding."""


def b64encode(data: bytes) -> str:
    """Encode bytes as base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Decode canonical unpadded base64url, rejecting padding, stray characters and slack bits."""
    if not isinstance(text, str) or not _B64URL.match(text) or len(text) % 4 == 1:
        raise EncodingError("not canonical unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise EncodingError("not canonical unpadded base64url") from exc
    if b64encode(data) != text:
        raise EncodingError("not canonical unpadded base64url")
    return data


def u32(value: int) -> bytes:
    """Encode an unsigned 32-bit integer big-endian."""
    return struct.pack(">I", value)


def u64(value: int) -> bytes:
    """Encode an unsigned 64-bit integer big-endian."""
    return struct.pack(">Q", value)


def lp(data: bytes) -> bytes:
    """Length-prefix a byte string with its u32 big-endian length."""
    return u32(len(data)) + data


def frame(label: str, *fields: bytes) -> bytes:
    """Build associated data or a signed message: a domain label then length-prefixed fields."""
    return lp(label.encode("ascii")) + b"".join(lp(f) for f in fields)


def unframe(label: str, data: bytes, count: int) -> list[bytes]:
    """Split a frame built by :func:`frame` with ``count`` fields; refuse any other shape."""
    fields: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise EncodingError("truncated frame")
        (size,) = struct.unpack(">I", data[offset : offset + 4])
        offset += 4
        if offset + size > len(data):
            raise EncodingError("truncated frame")
        fields.append(data[offset : offset + size])
        offset += size
    if not fields or fields[0] != label.encode("ascii"):
        raise EncodingError(f"not a {label} frame")
    if len(fields) != count + 1:
        raise EncodingError(f"a {label} frame has {count} fields")
    return fields[1:]
