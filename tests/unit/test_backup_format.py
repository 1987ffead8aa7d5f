"""The backup file format (docs/protocol.md §27.2-27.3): round trips and refusals."""

from __future__ import annotations

import io

import pytest

from vault.backup.fileformat import (
    CHUNK_BYTES,
    CHUNK_OVERHEAD,
    END,
    HEADER_BYTES,
    KIND_DATA,
    OBJECT,
    ROW,
    BackupError,
    Reader,
    Writer,
    generate_keypair,
)

PUBLIC, SECRET = generate_keypair()
FULL = CHUNK_BYTES + CHUNK_OVERHEAD


def write(payloads: list[bytes]) -> bytes:
    """A file of ROW records with these payloads, then END."""
    out = io.BytesIO()
    writer = Writer(out, KIND_DATA, PUBLIC)
    for payload in payloads:
        writer.record(ROW, payload)
    writer.record(END, b"{}")
    writer.close()
    return out.getvalue()


def read(data: bytes) -> list[bytes]:
    """The ROW payloads of a file, checking its END."""
    reader = Reader(io.BytesIO(data), SECRET)
    rows = []
    while True:
        kind, length = reader.record()
        payload = reader.read(length)
        if kind == END:
            reader.finish()
            return rows
        rows.append(payload)


@pytest.mark.parametrize(
    "sizes",
    [[], [1], [CHUNK_BYTES - 9 - 11], [CHUNK_BYTES * 3 + 5, 0, 70_000], [200_000] * 3],
)
def test_records_round_trip_across_chunk_boundaries(sizes: list[int]) -> None:
    payloads = [bytes([n % 251]) * size for n, size in enumerate(sizes)]
    data = write(payloads)
    assert read(data) == payloads


def test_a_streamed_record_equals_a_whole_one() -> None:
    out = io.BytesIO()
    writer = Writer(out, KIND_DATA, PUBLIC)
    writer.begin(OBJECT, 300_000)
    for _ in range(3):
        writer.write(b"z" * 100_000)
    writer.record(END, b"{}")
    writer.close()
    reader = Reader(io.BytesIO(out.getvalue()), SECRET)
    kind, length = reader.record()
    assert (kind, length) == (OBJECT, 300_000)
    assert b"".join(reader.pieces(length)) == b"z" * 300_000


def test_every_cut_every_swap_and_every_flipped_chunk_is_refused() -> None:
    data = write([b"r" * 150_000])
    chunks = [data[i : i + FULL] for i in range(HEADER_BYTES, len(data), FULL)]
    assert len(chunks) == 3
    for cut in (HEADER_BYTES, HEADER_BYTES + FULL, HEADER_BYTES + 2 * FULL, len(data) - 1):
        with pytest.raises(BackupError, match="truncated"):
            read(data[:cut])
    swapped = data[:HEADER_BYTES] + chunks[1] + chunks[0] + chunks[2]
    with pytest.raises(BackupError, match="altered"):
        read(swapped)
    for at in (HEADER_BYTES + 5, HEADER_BYTES + FULL + 100, len(data) - 3):
        flipped = data[:at] + bytes([data[at] ^ 0x80]) + data[at + 1 :]
        with pytest.raises(BackupError, match="altered"):
            read(flipped)


def test_the_header_is_bound_and_the_key_named() -> None:
    data = write([b"x"])
    other_public, other_secret = generate_keypair()
    with pytest.raises(BackupError, match="wrong backup key"):
        Reader(io.BytesIO(data), other_secret)
    sealed_at = HEADER_BYTES - 24 - 10  # inside the sealed stream key
    altered = data[:sealed_at] + bytes([data[sealed_at] ^ 1]) + data[sealed_at + 1 :]
    with pytest.raises(BackupError, match="header was altered"):
        Reader(io.BytesIO(altered), SECRET)
    stream_at = HEADER_BYTES - 3  # inside the secretstream header, bound as associated data
    altered = data[:stream_at] + bytes([data[stream_at] ^ 1]) + data[stream_at + 1 :]
    with pytest.raises(BackupError):
        read(altered)
    with pytest.raises(BackupError, match="not a Haven backup"):
        Reader(io.BytesIO(b"PK\x03\x04" + data[4:]), SECRET)
    assert other_public != PUBLIC


def test_the_backup_public_key_setting_is_checked_at_start() -> None:
    from vault.config import ConfigError, load_config
    from vault.protocol.encoding import b64encode

    assert load_config({})["HAVEN_BACKUP_PUBLIC_KEY"] is None
    good = load_config({"HAVEN_BACKUP_PUBLIC_KEY": b64encode(PUBLIC)})
    assert good["HAVEN_BACKUP_PUBLIC_KEY"] == PUBLIC
    for bad in ("not base64!", b64encode(PUBLIC[:31])):
        with pytest.raises(ConfigError, match="HAVEN_BACKUP_PUBLIC_KEY"):
            load_config({"HAVEN_BACKUP_PUBLIC_KEY": bad})
