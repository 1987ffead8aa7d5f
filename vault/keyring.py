"""The server keyring in keys/: versioned secrets, created on first start.

Layout: ``keys/<purpose>/<version>.key``, each file 32 random bytes, mode 0600, in a
0700 folder. The highest version of a purpose is current; lower versions still present
are kept for reading (decrypting old ciphertexts, verifying old sessions) until retired.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import nacl.utils
from flask import Flask, current_app

from vault.protocol import serverdata

PURPOSES = ("session", "data", "logsign", "factor")
KEY_BYTES = 32


class KeyringError(RuntimeError):
    """The keyring is missing, unreadable or has unsafe permissions."""


@dataclass
class Keyring:
    """All live versions of every server key."""

    path: Path
    keys: dict[str, dict[int, bytes]] = field(default_factory=dict)

    def current_version(self, purpose: str) -> int:
        """The version new writes use."""
        versions = self.keys.get(purpose)
        if not versions:
            raise KeyringError(f"keyring has no {purpose} key; run `haven keys init`")
        return max(versions)

    def current(self, purpose: str) -> bytes:
        """The current key of a purpose."""
        return self.keys[purpose][self.current_version(purpose)]

    def get(self, purpose: str, version: int) -> bytes:
        """A specific live version; KeyringError when retired or unknown."""
        try:
            return self.keys[purpose][version]
        except KeyError as exc:
            raise KeyringError(f"{purpose} key version {version} is not in the keyring") from exc

    def versions(self, purpose: str) -> list[int]:
        """Live versions, oldest first."""
        return sorted(self.keys.get(purpose, {}))


def _write_key(folder: Path, version: int) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = folder / f"{version}.key"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(nacl.utils.random(KEY_BYTES))
        handle.flush()
        os.fsync(handle.fileno())


def init_keyring(path: Path) -> list[str]:
    """Create version 1 of every missing purpose; return the purposes created."""
    created = []
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for purpose in PURPOSES:
        folder = path / purpose
        if not any(folder.glob("*.key")):
            _write_key(folder, 1)
            created.append(purpose)
    return created


def load_keyring(path: Path) -> Keyring:
    """Read every key file, refusing group- or world-readable ones."""
    ring = Keyring(path=path)
    for purpose in PURPOSES:
        ring.keys[purpose] = {}
        for file in (path / purpose).glob("*.key"):
            if file.stat().st_mode & 0o077:
                raise KeyringError(f"{file} is readable by others; chmod 600 it")
            data = file.read_bytes()
            if len(data) != KEY_BYTES:
                raise KeyringError(f"{file} is not a {KEY_BYTES}-byte key")
            ring.keys[purpose][int(file.stem)] = data
        if not ring.keys[purpose]:
            raise KeyringError(f"keyring {path} has no {purpose} key; run `haven keys init`")
    return ring


def rotate_key(path: Path, purpose: str) -> int:
    """Add a new current version of a purpose; return it."""
    if purpose not in PURPOSES:
        raise KeyringError(f"unknown key purpose {purpose!r}")
    version = load_keyring(path).current_version(purpose) + 1
    _write_key(path / purpose, version)
    return version


def retire_key(path: Path, purpose: str, version: int) -> None:
    """Remove a non-current version from the keyring."""
    ring = load_keyring(path)
    if version == ring.current_version(purpose):
        raise KeyringError("the current version cannot be retired; rotate first")
    ring.get(purpose, version)
    target = path / purpose / f"{version}.key"
    with open(target, "r+b") as handle:
        handle.write(bytes(KEY_BYTES))
        handle.flush()
        os.fsync(handle.fileno())
    target.unlink()


def keyring() -> Keyring:
    """The keyring of the current app."""
    ring: Keyring = current_app.extensions["haven.keyring"]
    return ring


def created_at(path: Path, purpose: str, version: int) -> float:
    """When a key version was written (its file's modification time)."""
    return (path / purpose / f"{version}.key").stat().st_mtime


def _fingerprint(path: Path) -> tuple[tuple[str, int, float], ...]:
    return tuple(
        sorted(
            (f"{folder.name}/{file.name}", file.stat().st_ino, file.stat().st_mtime)
            for folder in path.iterdir()
            if folder.is_dir()
            for file in folder.glob("*.key")
        )
    )


def install(app: Flask, ring: Keyring) -> None:
    """Make a keyring the app's, including the session secret and its fallbacks."""
    app.extensions["haven.keyring"] = ring
    # A retired data key must not live on in the subkey cache of this process.
    serverdata.forget_derived()
    session_keys = [ring.get("session", v).hex() for v in ring.versions("session")]
    app.config["SECRET_KEY"] = session_keys[-1]
    app.config["SECRET_KEY_FALLBACKS"] = list(reversed(session_keys[:-1]))
    app.extensions["haven.keyring.seen"] = (_fingerprint(ring.path), time.monotonic())


def refresh(app: Flask, every: float = 2.0) -> None:
    """Pick up rotated or retired keys written by another process, at most every few seconds.

    Rotation never needs a restart: each process notices the new files on its own.
    """
    fingerprint, checked = app.extensions.get("haven.keyring.seen", ((), 0.0))
    if time.monotonic() - checked < every:
        return
    ring: Keyring = app.extensions["haven.keyring"]
    current = _fingerprint(ring.path)
    if current == fingerprint:
        app.extensions["haven.keyring.seen"] = (fingerprint, time.monotonic())
        return
    install(app, load_keyring(ring.path))
