"""The `haven` command: serve with the embedded defaults, db upgrade, invites, keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from tests.conftest import PASSPHRASE
from tests.services import free_port, minio_binary
from vault.cli import main
from vault.client import HavenClient, WitnessPolicy


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "HAVEN_DATABASE_URL": f"sqlite:///{tmp_path}/haven.db",
        "HAVEN_KEYS_DIR": str(tmp_path / "keys"),
        "HAVEN_SECURE_COOKIES": "false",
        "HAVEN_SERVER_HASH_OPSLIMIT": "1",
        "HAVEN_SERVER_HASH_MEMLIMIT": "8192",
    }


def test_db_upgrade_then_admin_invite_registers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    upgraded = runner.invoke(main, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "up to date" in upgraded.output
    invited = runner.invoke(main, ["admin", "invite", "--role", "counsel"])
    assert invited.exit_code == 0, invited.output
    link = invited.output.strip().splitlines()[0]
    assert link.startswith("http://127.0.0.1:8000/app/#invite=")
    refused = runner.invoke(main, ["admin", "invite", "--role", "survivor"])
    assert refused.exit_code != 0


def test_keys_init_and_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    first = runner.invoke(main, ["keys", "init"])
    assert first.exit_code == 0
    assert "created: session, data, logsign" in first.output
    assert "already complete" in runner.invoke(main, ["keys", "init"]).output
    for purpose in ("session", "data", "logsign"):
        key = tmp_path / "keys" / purpose / "1.key"
        assert key.stat().st_mode & 0o777 == 0o600
        assert len(key.read_bytes()) == 32
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    status = runner.invoke(main, ["keys", "status"])
    assert "data: current 1; live v1 (0 in use)" in status.output, status.output
    rotated = runner.invoke(main, ["keys", "rotate", "data"])
    assert rotated.exit_code == 0, rotated.output
    assert "version 2 is now current" in rotated.output
    assert runner.invoke(main, ["keys", "retire", "data", "1"]).exit_code == 0
    refused = runner.invoke(main, ["keys", "retire", "data", "2"])
    assert refused.exit_code != 0
    assert "current version cannot be retired" in refused.output


def test_keyring_refuses_world_readable_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAVEN_KEYS_DIR", str(tmp_path / "keys"))
    runner = CliRunner()
    runner.invoke(main, ["keys", "init"])
    (tmp_path / "keys" / "data" / "1.key").chmod(0o644)
    result = runner.invoke(main, ["keys", "status"])
    assert result.exit_code != 0
    assert "readable by others" in str(result.exception)


def test_bad_setting_stops_the_start_naming_it() -> None:
    from vault.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="HAVEN_SESSION_IDLE_MINUTES"):
        load_config({"HAVEN_SESSION_IDLE_MINUTES": "soon"})
    with pytest.raises(ConfigError, match="HAVEN_SECURE_COOKIES"):
        load_config({"HAVEN_SECURE_COOKIES": "maybe"})
    with pytest.raises(ConfigError, match="HAVEN_DATABASE_URL"):
        load_config({"HAVEN_DATABASE_URL": "mysql://x"})
    with pytest.raises(ConfigError, match="HAVEN_S3_SECRET_KEY_FILE"):
        load_config({"HAVEN_S3_SECRET_KEY_FILE": "/nonexistent/secret"})


def test_secret_from_file(tmp_path: Path) -> None:
    from vault.config import load_config

    secret = tmp_path / "s3"
    secret.write_text("from-a-file\n")
    assert (
        load_config({"HAVEN_S3_SECRET_KEY_FILE": str(secret)})["HAVEN_S3_SECRET_KEY"]
        == "from-a-file"
    )


def test_serve_starts_embedded_minio_and_prints_the_first_admin_invite(tmp_path: Path) -> None:
    port, minio_port = free_port(), free_port()
    env = dict(os.environ, **_env(tmp_path), HAVEN_MINIO_BIN=minio_binary())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vault.cli",
            "serve",
            "--embedded-minio",
            "--port",
            str(port),
            "--minio-port",
            str(minio_port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        link = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not link:
            line = proc.stdout.readline()
            if not line:
                break
            if "#invite=" in line:
                link = line.strip()
        assert link, "no admin invite printed"
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert requests.get(f"{base}/readyz", timeout=5).json()["checks"]["object_store"] == "ok"
        admin = HavenClient(base, witnesses=WitnessPolicy.unwitnessed())
        admin.register(link, "first-admin", PASSPHRASE)
        assert admin.account is not None and admin.account.role == "admin"
        assert (tmp_path / "var" / "minio" / "credentials").stat().st_mode & 0o777 == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{minio_port}/minio/health/live", timeout=2)
