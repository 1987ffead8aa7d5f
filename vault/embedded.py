"""The embedded default for `haven serve`: a single-node MinIO child process in var/minio."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path


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
