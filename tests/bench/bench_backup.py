"""Backup and restore of a data set (1 GiB of objects by default) through the `haven` command.

Each run is its own process, so its peak RSS (ru_maxrss from wait4) is the command's own.
Baselines measured in the same run, on the same data:
- backup: reading every object with the same minio-py client into a plain file, no
  encryption (the raw copy); the database part alone beside `pg_dump` of the same database;
- restore: putting the raw copy's objects back into an empty bucket, no decryption.

HAVEN_BENCH_BACKUP_MIB scales the data set down while developing (default 1024).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.bench_keys import _fill_users
from tests.bench.harness import Services, emit, log, timer
from tests.services import _pg_bin
from vault import migrate
from vault.backup.fileformat import generate_keypair
from vault.backup.services import write_backup
from vault.db import Database, make_engine
from vault.keyring import init_keyring
from vault.protocol.encoding import b64encode
from vault.storage import ObjectStore

OBJECT_MIB = 16
ROWS = 20_000
MIB = 1024 * 1024


def _peak_rss(pid: int) -> float:
    """The process's peak RSS so far (VmHWM), in MiB; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1]) / 1024


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run a process to its end; return (seconds, peak RSS in MiB).

    The peak is the process's own VmHWM, read every 50 ms until it ends (wait4's
    ru_maxrss would include the RSS of this process, which the child was forked from).
    """
    peak = 0.0
    with timer() as elapsed:
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
        while proc.poll() is None:
            peak = max(peak, _peak_rss(proc.pid))
            time.sleep(0.05)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[2:4]} exited {proc.returncode}")
    return elapsed(), peak


def _haven(*args: str) -> list[str]:
    return [sys.executable, "-m", "vault.cli", *args]


def _fill_bucket(store: ObjectStore, total_mib: int) -> int:
    """Random objects of OBJECT_MIB (the last one smaller) under doc/; return the bytes."""
    store.ensure_bucket()
    written, number = 0, 0
    while written < total_mib * MIB:
        size = min(OBJECT_MIB * MIB, total_mib * MIB - written)
        body = os.urandom(size)
        store.put(f"doc/{secrets.token_urlsafe(16)}", [body], size)
        written, number = written + size, number + 1
    log(f"bucket holds {number} objects, {written // MIB} MiB")
    return written


def run(services: Services) -> None:
    """Backup, restore, and their baselines."""
    total_mib = int(os.environ.get("HAVEN_BENCH_BACKUP_MIB", "1024"))
    pg, minio = services.postgres, services.minio
    work = Path(tempfile.mkdtemp(prefix="haven-bench-backup-"))
    name = f"bench_backup_{secrets.token_hex(4)}"
    pg.execute(f"CREATE DATABASE {name}")
    url = pg.url(name)
    migrate.upgrade(url)
    keys = work / "keys"
    init_keyring(keys)
    _fill_users(Database(url), keys, ROWS)
    public, secret = generate_keypair()
    (work / "secret").write_text(b64encode(secret))
    bucket = f"bench-{secrets.token_hex(4)}"
    env = {
        "HAVEN_DATABASE_URL": url,
        "HAVEN_KEYS_DIR": str(keys),
        "HAVEN_BACKUP_PUBLIC_KEY": b64encode(public),
        **minio.settings(bucket),
    }
    store = ObjectStore(env["HAVEN_S3_ENDPOINT"], minio.access_key, minio.secret_key, bucket)
    store.ensure_bucket()

    # The database alone (the bucket is still empty), in this process: the logical dump in
    # the backup file against pg_dump of the same database.
    engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with timer() as db_only_timer:
        write_backup(engine, store, work / "db.backup", public)
    engine.dispose()
    db_only = db_only_timer()
    dump = [_pg_bin("pg_dump"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres"]
    pg_dump, _ = _run([*dump, "-Fc", "-f", str(work / "db.pgdump"), name], {})
    emit("backup_database_seconds", db_only, "s", pg_dump, rows=ROWS, baseline_is="pg_dump -Fc")

    startup, _ = _run(_haven("--help"), env)
    emit("backup_cli_startup_seconds", startup, "s")  # included in the figures below
    data = _fill_bucket(store, total_mib)
    backup = _run(_haven("backup", str(work / "data.backup")), env)
    raw = _run([sys.executable, "-m", "tests.bench.bench_backup", "copy", str(work / "raw")], env)
    _emit_pair("backup", data, backup, raw, "unencrypted read of every object")

    target = f"bench_restore_{secrets.token_hex(4)}"
    pg.execute(f"CREATE DATABASE {target}")
    restore_env = {**env, "HAVEN_DATABASE_URL": pg.url(target), **minio.settings(f"{bucket}-r")}
    restore = _run(
        _haven("restore", str(work / "data.backup"), "--secret-key", str(work / "secret")),
        restore_env,
    )
    raw_env = {**env, **minio.settings(f"{bucket}-raw")}
    raw = _run(
        [sys.executable, "-m", "tests.bench.bench_backup", "put", str(work / "raw")], raw_env
    )
    _emit_pair("restore", data, restore, raw, "unencrypted put of every object")
    for name_ in ("raw", "data.backup", "db.backup", "db.pgdump"):
        (work / name_).unlink(missing_ok=True)


def _emit_pair(
    name: str, data: int, measured: tuple[float, float], raw: tuple[float, float], what: str
) -> None:
    """Throughput and peak RSS of one command beside the raw baseline's."""
    mib = data / MIB
    emit(
        f"{name}_throughput",
        mib / measured[0],
        "MiB/s",
        mib / raw[0],
        data_mib=mib,
        baseline_is=what,
    )
    emit(f"{name}_peak_rss", measured[1], "MiB", raw[1], data_mib=mib)


def _store_from_env() -> ObjectStore:
    env = os.environ
    return ObjectStore(
        env["HAVEN_S3_ENDPOINT"],
        env["HAVEN_S3_ACCESS_KEY"],
        env["HAVEN_S3_SECRET_KEY"],
        env["HAVEN_S3_BUCKET"],
    )


def _raw_copy(path: Path) -> None:
    """Baseline: every object into one plain file (u16 name length, name, u64 size, bytes)."""
    store = _store_from_env()
    with path.open("wb") as out:
        for name, _ in store.list_objects(""):
            reader = store.open(name)
            out.write(len(name).to_bytes(2, "big") + name.encode())
            out.write(reader.length.to_bytes(8, "big"))
            for piece in reader:
                out.write(piece)
            reader.close()


def _raw_put(path: Path) -> None:
    """Baseline: the raw copy's objects back into an empty bucket."""
    store = _store_from_env()
    store.ensure_bucket()
    with path.open("rb") as src:
        while head := src.read(2):
            name = src.read(int.from_bytes(head, "big")).decode()
            size = int.from_bytes(src.read(8), "big")

            def pieces(left: int = size) -> object:
                while left:
                    piece = src.read(min(left, 4 * MIB))
                    left -= len(piece)
                    yield piece

            store.put(name, pieces(), size)  # type: ignore[arg-type]


if __name__ == "__main__":
    {"copy": _raw_copy, "put": _raw_put}[sys.argv[1]](Path(sys.argv[2]))
