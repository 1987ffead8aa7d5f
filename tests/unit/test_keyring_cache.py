"""A keyring installed in the app drops the subkeys cached under the keys it had before."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from vault import keyring
from vault.protocol import serverdata


def test_installing_a_keyring_forgets_the_cached_subkeys(tmp_path: Path) -> None:
    keyring.init_keyring(tmp_path)
    ring = keyring.load_keyring(tmp_path)
    serverdata.lookup_hash(ring.current("data"), "counsel.one")
    assert serverdata._subkey.cache_info().currsize > 0
    # Installing is what a process does when it notices a rotated or retired key (refresh).
    keyring.install(Flask(__name__), ring)
    assert serverdata._subkey.cache_info().currsize == 0
