"""Protocol primitives: canonical encodings, KDF floors, recovery key parsing, sealing."""

from __future__ import annotations

import pytest

from vault.protocol import keys as pkeys
from vault.protocol import serverdata
from vault.protocol.encoding import EncodingError, b64decode, b64encode
from vault.protocol.kdf import KdfParams, WeakParameters, check_passphrase_strength


@pytest.mark.parametrize("text", ["AAA=", "AA+A", "A", "AB", "ab c", "Zm9v\n"])
def test_b64decode_refuses_non_canonical_text(text: str) -> None:
    with pytest.raises(EncodingError):
        b64decode(text)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff\xfe", bytes(range(256))])
def test_b64_round_trips(data: bytes) -> None:
    assert b64decode(b64encode(data)) == data


@pytest.mark.parametrize(
    "params",
    [
        KdfParams(b"\x00" * 16, opslimit=2),
        KdfParams(b"\x00" * 16, memlimit=(64 << 20) - 1024),
        KdfParams(b"\x00" * 16, memlimit=2 << 30),
        KdfParams(b"\x00" * 16, opslimit=17),
        KdfParams(b"\x00" * 15),
        KdfParams(b"\x00" * 16, alg="argon2i13"),
    ],
)
def test_weak_or_hostile_kdf_parameters_are_refused(params: KdfParams) -> None:
    with pytest.raises(WeakParameters):
        params.check()


def test_short_passphrase_is_refused() -> None:
    with pytest.raises(WeakParameters):
        check_passphrase_strength("too short")
    check_passphrase_strength("long enough passphrase")


def test_recovery_key_parsing_is_forgiving_but_canonical() -> None:
    key = pkeys.generate_recovery_key()
    text = pkeys.format_recovery_key(key)
    assert pkeys.parse_recovery_key(text.lower().replace("-", " ")) == key
    with pytest.raises(pkeys.ProtocolError):
        pkeys.parse_recovery_key(text[:-1])
    with pytest.raises(pkeys.ProtocolError):
        pkeys.parse_recovery_key(text[:-1] + "1")


@pytest.mark.parametrize("name", ["ab", "-lead", "has space", "x" * 33, "émile!"])
def test_bad_usernames_are_refused(name: str) -> None:
    with pytest.raises(pkeys.ProtocolError):
        pkeys.normalize_username(name)


def test_usernames_are_normalised() -> None:
    assert pkeys.normalize_username("  Ａmira.K ") == "amira.k"


def test_sealed_identifier_names_its_version_and_authenticates() -> None:
    key = b"\x07" * 32
    blob = serverdata.seal_identifier(key, 3, "username", "amira")
    assert serverdata.sealed_version(blob) == 3
    assert serverdata.open_identifier(key, "username", blob) == "amira"
    tampered = blob[:5] + bytes([blob[5] ^ 1]) + blob[6:]
    with pytest.raises(serverdata.SealError):
        serverdata.open_identifier(key, "username", tampered)
    with pytest.raises(serverdata.SealError):
        serverdata.open_identifier(key, "other-kind", blob)
    assert b"amira" not in blob
