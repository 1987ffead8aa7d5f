"""Test vectors of witnessed checkpoints (docs/protocol.md §15), from fixed inputs only.

The log key and two witness keys are Ed25519 seeds derived from labels; cosignature
timestamps are fixed. Ed25519 signatures are deterministic, so every note is reproducible.
Each case names the witness keys a client is configured with, its quorum, and whether it
accepts (``"accept"``) or a short reason it refuses.
"""

from __future__ import annotations

import hashlib
from typing import Any

import nacl.signing

from vault.protocol import checkpoint as cp
from vault.protocol.encoding import b64encode

ORIGIN = "haven.example/key-log"
WITNESSES = ("witness.example/bar-association", "witness.example/ngo", "witness.example/plus")
TIMESTAMPS = (1_795_000_000, 1_795_000_042, 1_795_000_099)


def _bytes(label: str, n: int) -> bytes:
    """Deterministic filler bytes for a named input (as in generate.py)."""
    return hashlib.shake_256(label.encode()).digest(n)


def _public(seed: bytes) -> bytes:
    return bytes(nacl.signing.SigningKey(seed).verify_key)


def _flip(line: cp.Signature) -> cp.Signature:
    """The same signature line with the last signature bit flipped."""
    sig = line.signature[:-1] + bytes([line.signature[-1] ^ 1])
    return cp.Signature(line.name, line.key_hash, sig)


def _plus_seed() -> bytes:
    """The first labelled seed whose cosigner vkey holds a '+' in its base64 (a parser trap)."""
    for n in range(1000):
        seed = _bytes(f"checkpoint:plus:{n}", 32)
        vkey = cp.VerifierKey(WITNESSES[2], cp.ALG_COSIGNATURE_V1, _public(seed)).encode()
        if "+" in vkey.split("+", 2)[2]:
            return seed
    raise AssertionError("no seed found")


def checkpoint_vectors() -> dict[str, Any]:
    """Checkpoint bodies, vkeys, key hashes, cosignature messages and acceptance cases."""
    log_seed = _bytes("checkpoint:log", 32)
    log_key = cp.log_verifier(ORIGIN, _public(log_seed))
    seeds = [_bytes(f"checkpoint:{name}", 32) for name in WITNESSES[:2]] + [_plus_seed()]
    keys = [
        cp.VerifierKey(n, cp.ALG_COSIGNATURE_V1, _public(s))
        for n, s in zip(WITNESSES, seeds, strict=True)
    ]
    body = cp.Checkpoint(ORIGIN, 5, _bytes("checkpoint:root5", 32))
    text = body.body()
    log_sig = cp.sign_ed25519(text, ORIGIN, log_seed)
    cosigs = [
        cp.cosign(text, n, s, t) for n, s, t in zip(WITNESSES, seeds, TIMESTAMPS, strict=True)
    ]
    # A split view: another checkpoint of the same size, signed by the same log key.
    other = cp.Checkpoint(ORIGIN, 5, _bytes("checkpoint:fork5", 32)).body()
    stranger_seed = _bytes("checkpoint:stranger", 32)
    stranger = cp.cosign(text, WITNESSES[0], stranger_seed, TIMESTAMPS[0])

    def note(note_text: str, *sigs: cp.Signature) -> str:
        return cp.Note(note_text, sigs).encode()

    everything = note(text, log_sig, *cosigs)
    cases = [
        ("three of three", everything, [0, 1, 2], 3, "accept"),
        ("a '+' inside the key's base64", note(text, log_sig, cosigs[2]), [2], 1, "accept"),
        ("one of two", note(text, log_sig, cosigs[1]), [0, 1], 1, "accept"),
        (
            "unknown signatures are ignored",
            note(text, log_sig, stranger, cosigs[1]),
            [1],
            1,
            "accept",
        ),
        ("quorum not met", note(text, log_sig, cosigs[0]), [0, 1], 2, "quorum"),
        ("no cosignature", note(text, log_sig), [0], 1, "quorum"),
        (
            "a stranger's key under a witness's name",
            note(text, log_sig, stranger),
            [0],
            1,
            "quorum",
        ),
        (
            "a bad cosignature",
            note(text, log_sig, _flip(cosigs[0]), cosigs[1]),
            [0, 1],
            1,
            "malformed",
        ),
        (
            "cosignatures moved to a fork",
            note(other, cp.sign_ed25519(other, ORIGIN, log_seed), *cosigs),
            [0, 1],
            1,
            "malformed",
        ),
        ("not signed by the log", note(text, *cosigs), [0, 1], 1, "log"),
        ("a bad log signature", note(text, _flip(log_sig), *cosigs), [0, 1], 1, "malformed"),
        (
            "two lines by one witness",
            note(text, log_sig, cosigs[0], cosigs[0]),
            [0],
            1,
            "malformed",
        ),
        (
            "extension line",
            note(text + "extra\n", cp.sign_ed25519(text + "extra\n", ORIGIN, log_seed), *cosigs),
            [0, 1],
            1,
            "malformed",
        ),
    ]
    return {
        "origin": ORIGIN,
        "log": {
            "seed": b64encode(log_seed),
            "public_key": b64encode(log_key.public_key),
            "key_hash": log_key.key_hash.hex(),
            "vkey": log_key.encode(),
        },
        "witnesses": [
            {
                "name": key.name,
                "seed": b64encode(seed),
                "public_key": b64encode(key.public_key),
                "key_hash": key.key_hash.hex(),
                "vkey": key.encode(),
                "timestamp": timestamp,
                "message": cp.cosignature_message(text, timestamp).decode(),
                "line": sig.line(),
            }
            for key, seed, timestamp, sig in zip(keys, seeds, TIMESTAMPS, cosigs, strict=True)
        ],
        "checkpoint": {"size": body.size, "root": b64encode(body.root), "text": text},
        "log_signature_line": log_sig.line(),
        "note": everything,
        "cases": [
            {"name": n, "note": t, "witnesses": w, "quorum": q, "expect": e}
            for n, t, w, q, e in cases
        ],
    }
