"""The embedded defaults for `haven serve`: a single-node MinIO child process in var/minio
and a litewitness (with its own ssh-agent and key) in var/witness."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from vault.protocol import checkpoint


def _credentials(folder: Path) -> tuple[str, str]:
    """Read or create the embedded MinIO's root credentials (mode 0600)."""
    path = folder / "credentials"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"haven-{secrets.token_hex(6)}\n{secrets.token_urlsafe(30)}\n")
    user, password = path.read_text().split()
    return user, password


def start_minio(
    binary: str, var: Path, port: int
) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """Start MinIO on 127.0.0.1:port with data under var/minio; wait until it is live."""
    folder = var / "minio"
    user, password = _credentials(folder)
    env = dict(os.environ, MINIO_ROOT_USER=user, MINIO_ROOT_PASSWORD=password)
    env["MINIO_BROWSER"] = "off"
    log = open(folder / "minio.log", "ab")  # noqa: SIM115 - handed to the child for its lifetime
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        [binary, "server", str(folder / "data"), "--address", f"127.0.0.1:{port}", "--quiet"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    url = f"http://127.0.0.1:{port}/minio/health/live"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"MinIO exited with {proc.returncode}; see {folder / 'minio.log'}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        proc.terminate()
        raise RuntimeError("MinIO did not become live within 60 s")
    settings = {
        "HAVEN_S3_ENDPOINT": f"127.0.0.1:{port}",
        "HAVEN_S3_ACCESS_KEY": user,
        "HAVEN_S3_SECRET_KEY": password,
    }
    return proc, settings


LITEWITNESS_SCHEMA = """
    CREATE TABLE IF NOT EXISTS log (
        origin TEXT PRIMARY KEY,
        tree_size INTEGER NOT NULL,
        tree_hash TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS key (
        origin TEXT NOT NULL,
        key TEXT NOT NULL,
        FOREIGN KEY(origin) REFERENCES log(origin)
    );
"""


def witness_key(folder: Path) -> bytes:
    """Read or create the witness's Ed25519 SSH key (ssh-keygen); return its public key."""
    path = folder / "witness-key"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(  # noqa: S603 - fixed argv
            [
                _tool("ssh-keygen"),
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "haven-witness",
                "-f",
                str(path),
            ],
            check=True,
        )
    blob = base64.b64decode(Path(f"{path}.pub").read_text().split()[1])
    # SSH wire format: string "ssh-ed25519", string key (each a u32 length and bytes).
    name_len = int.from_bytes(blob[:4], "big")
    key = blob[8 + name_len :]
    if blob[4 : 4 + name_len] != b"ssh-ed25519" or len(key) != 32:
        raise RuntimeError(f"{path}.pub is not an Ed25519 key")
    return key


def register_log(db_path: Path, origin: str, log_vkeys: list[str]) -> None:
    """What `witnessctl add-log` and `add-key` do: a known log at size 0 and its keys."""
    empty = base64.b64encode(hashlib.sha256(b"").digest()).decode("ascii")
    with closing(sqlite3.connect(db_path, timeout=30)) as conn, conn:
        conn.executescript(LITEWITNESS_SCHEMA)
        conn.execute("INSERT OR IGNORE INTO log VALUES (?, 0, ?)", (origin, empty))
        known = {row[0] for row in conn.execute("SELECT key FROM key WHERE origin = ?", (origin,))}
        for vkey in log_vkeys:
            if vkey not in known:
                conn.execute("INSERT INTO key VALUES (?, ?)", (origin, vkey))


class Litewitness:
    """A litewitness process with its own ssh-agent holding its own key, in ``folder``."""

    def __init__(self, binary: str, folder: Path, name: str, port: int) -> None:
        self.binary, self.folder, self.name, self.port = binary, folder, name, port
        self.public_key = witness_key(folder)
        self.db = folder / "litewitness.db"
        self.socket = folder / "agent.sock"
        self.agent: subprocess.Popen[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The submission prefix."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def vkey(self) -> str:
        """The witness's cosignature/v1 verifier key string."""
        return checkpoint.VerifierKey(
            self.name, checkpoint.ALG_COSIGNATURE_V1, self.public_key
        ).encode()

    def _start_agent(self) -> None:
        self.socket.unlink(missing_ok=True)
        self.agent = subprocess.Popen(  # noqa: S603 - fixed argv
            [_tool("ssh-agent"), "-D", "-a", str(self.socket)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: self.socket.exists(), "ssh-agent")
        env = dict(os.environ, SSH_AUTH_SOCK=str(self.socket))
        subprocess.run(  # noqa: S603 - fixed argv
            [_tool("ssh-add"), "-q", str(self.folder / "witness-key")],
            env=env,
            check=True,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        """Start ssh-agent (once) and litewitness; wait until it answers."""
        if self.agent is None:
            self._start_agent()
        log = open(self.folder / "litewitness.log", "ab")  # noqa: SIM115 - the child's for its life
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                self.binary,
                "-name",
                self.name,
                "-db",
                str(self.db),
                "-ssh-agent",
                str(self.socket),
                "-key",
                hashlib.sha256(self.public_key).hexdigest(),
                "-listen",
                f"127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        proc = self.proc

        def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"litewitness exited; see {self.folder / 'litewitness.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/", timeout=1) as resp:  # noqa: S310 - http
                    return bool(resp.status == 200)
            except OSError:
                return False

        _wait(answers, "litewitness")

    def stop(self) -> None:
        """Stop litewitness (the agent keeps running, so it can start again)."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def close(self) -> None:
        """Stop litewitness and its ssh-agent."""
        self.stop()
        if self.agent is not None:
            self.agent.terminate()
            self.agent.wait(timeout=30)
            self.agent = None


def _tool(name: str) -> str:
    """The full path of an OpenSSH tool, or a clear error."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: install OpenSSH's client tools (openssh-client)")
    return path


def _wait(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s")
