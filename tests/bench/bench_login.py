"""Login cost: the client's Argon2id derivation and the server's verification of the subkey."""

from __future__ import annotations

import os
import statistics
import time

import nacl.pwhash

from tests.bench.harness import Services, emit
from vault.accounts.services import HashCost, hash_auth_key, verify_auth_key
from vault.config import load_config
from vault.protocol.kdf import KdfParams, passphrase_keys

ROUNDS = 5


def _median(fn: object, rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(_services: Services) -> None:
    """Client derivation at the protocol defaults, server verification at the configured cost."""
    params = KdfParams(os.urandom(16))
    client = _median(lambda: passphrase_keys("correct horse battery staple", params))
    cfg = load_config({})
    cost = HashCost(cfg["HAVEN_SERVER_HASH_OPSLIMIT"], cfg["HAVEN_SERVER_HASH_MEMLIMIT"])
    key = os.urandom(32)
    stored = hash_auth_key(key, cost)
    server = _median(lambda: verify_auth_key(stored, key))
    # Baseline: libsodium's own "interactive" Argon2id verification cost on this machine.
    base_hash = nacl.pwhash.argon2id.str(key)
    baseline = _median(lambda: nacl.pwhash.verify(base_hash, key))
    emit("login_client_argon2id_3x64MiB", client * 1000, "ms")
    emit(
        "login_server_verify",
        server * 1000,
        "ms",
        baseline * 1000,
        opslimit=cost.opslimit,
        memlimit=cost.memlimit,
        baseline_is="libsodium argon2id interactive verify",
    )
