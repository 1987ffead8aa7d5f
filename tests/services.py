"""Real PostgreSQL, Redis, MinIO and litewitness processes on free loopback ports, for the tests.

Each server runs from a temporary folder and is stopped at the end. PostgreSQL refuses
to run as root, so as root it runs as the unprivileged `nobody` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Any, what: str, timeout: float = 60.0) -> None:
    """Poll ``check`` until it returns truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s: {last}")


def _as_unprivileged(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "nobody", "--", *cmd]
    return cmd


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} not found; run `make deps`")
    return path


class _LogFile:
    """Mixin: a log file handed to the child, closed when the server stops."""

    root: Path
    log_handle: Any = None

    def _log(self, name: str) -> Any:
        if self.log_handle is None:
            self.log_handle = open(self.root / name, "ab")  # noqa: SIM115
        return self.log_handle

    def _close_log(self) -> None:
        if self.log_handle is not None:
            self.log_handle.close()
            self.log_handle = None


class PostgresServer(_LogFile):
    """A throwaway PostgreSQL cluster."""

    def __init__(self) -> None:
        # Its own folder under the system temp dir: as root the server runs as `nobody`,
        # which cannot enter pytest's private temp folders.
        self.root = Path(tempfile.mkdtemp(prefix="haven-pg-"))
        self.data = self.root / "pgdata"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            shutil.chown(self.root, "nobody", "nogroup")

    def start(self) -> None:
        """initdb (first time) and start the server."""
        if not self.data.exists():
            subprocess.run(
                _as_unprivileged(
                    [
                        _pg_bin("initdb"),
                        "-D",
                        str(self.data),
                        "-U",
                        "postgres",
                        "-A",
                        "trust",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                        "--no-sync",
                    ]
                ),
                check=True,
                capture_output=True,
            )
        self.proc = subprocess.Popen(
            _as_unprivileged(
                [
                    _pg_bin("postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.root),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=self._log("postgres.log"),
        )
        wait_for(self._is_ready, "PostgreSQL")

    def _is_ready(self) -> bool:
        result = subprocess.run(
            [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
            capture_output=True,
        )
        return result.returncode == 0

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of a database on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres", *, autocommit: bool = True) -> Any:
        """A psycopg connection to a database on this server, as the superuser."""
        import psycopg

        return psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname={database}",
            autocommit=autocommit,
        )

    def execute(self, sql: str) -> None:
        """Run one statement as the superuser, outside a transaction."""
        with self.connect() as conn:
            conn.execute(sql)

    def drop_database(self, name: str) -> None:
        """Drop a test's database, ending what still holds it; a stopped server keeps it."""
        import psycopg

        # A fault test that left the server down keeps it: the folder goes at the session's end.
        with contextlib.suppress(psycopg.OperationalError):
            self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self, mode: str = "fast") -> None:
        """Stop the server quickly (open sessions are cut, not waited for) and close the log."""
        self._pg_ctl_stop(mode)
        self._close_log()

    def stop_fast(self) -> None:
        """Stop as an operator's restart does (fast shutdown): open sessions are cut and
        their transactions rolled back."""
        self._pg_ctl_stop("fast")

    def _pg_ctl_stop(self, mode: str) -> None:
        # pg_ctl signals the postmaster itself: a signal to our child would reach runuser,
        # which turns any signal into a "smart" shutdown that waits for every client.
        if self.proc is not None:
            subprocess.run(
                _as_unprivileged(
                    [_pg_bin("pg_ctl"), "stop", "-D", str(self.data), "-m", mode, "-w"]
                ),
                check=True,
                capture_output=True,
            )
            self.proc.wait(timeout=30)
            self.proc = None

    def restart(self) -> None:
        """Fast shutdown and start again on the same port, with the same data."""
        self.stop_fast()
        self.start()

    def remove(self) -> None:
        """Stop and delete the cluster's folder (nothing in it is kept: immediate shutdown)."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A throwaway Redis with persistence off."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start redis-server on loopback."""
        self.root.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._ping, "Redis")

    def _ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    @property
    def url(self) -> str:
        """redis:// URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stop the server."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


def minio_binary() -> str:
    """The MinIO server built from the pinned commit (HAVEN_MINIO_BIN), or one on PATH."""
    binary = os.environ.get("HAVEN_MINIO_BIN") or shutil.which("minio")
    if not binary or not Path(binary).exists():
        raise RuntimeError("MinIO not found: set HAVEN_MINIO_BIN or run `make deps`")
    return binary


class MinioServer(_LogFile):
    """A throwaway single-node MinIO that can be stopped and restarted on the same port."""

    access_key = "haven-test"
    secret_key = "haven-test-secret-key"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start MinIO and wait until it reports live."""
        self.root.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ,
            MINIO_ROOT_USER=self.access_key,
            MINIO_ROOT_PASSWORD=self.secret_key,
            MINIO_BROWSER="off",
            MINIO_UPDATE="off",
        )
        self.proc = subprocess.Popen(
            [
                minio_binary(),
                "server",
                str(self.root / "data"),
                "--address",
                f"127.0.0.1:{self.port}",
                "--quiet",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log("minio.log"),
        )
        wait_for(self._is_ready, "MinIO")

    def _is_ready(self) -> bool:
        # "live" answers before the object layer is up; "ready" only once S3 calls are served
        # (a restarted server otherwise refuses the first calls with 503 for a moment).
        url = f"http://127.0.0.1:{self.port}/minio/health/ready"
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)

    def settings(self, bucket: str) -> dict[str, str]:
        """App settings that point at this server and bucket."""
        return {
            "HAVEN_S3_ENDPOINT": f"127.0.0.1:{self.port}",
            "HAVEN_S3_ACCESS_KEY": self.access_key,
            "HAVEN_S3_SECRET_KEY": self.secret_key,
            "HAVEN_S3_BUCKET": bucket,
        }

    def stop(self) -> None:
        """Stop MinIO (as a fault, or at the end)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None

    def close(self) -> None:
        """Stop for good and close the log."""
        self.stop()
        self._close_log()


def litewitness_binary() -> str:
    """litewitness built at the pinned version (HAVEN_LITEWITNESS_BIN), or one on PATH."""
    binary = os.environ.get("HAVEN_LITEWITNESS_BIN") or shutil.which("litewitness")
    if not binary or not Path(binary).exists():
        raise RuntimeError("litewitness not found: set HAVEN_LITEWITNESS_BIN or run `make deps`")
    return binary


class DistributedMinio:
    """Four MinIO processes with two drives each: one erasure-coded set of eight drives.

    Every node is the same pinned build started with the same endpoint list, as on four
    hosts; here they share loopback and differ by port. The endpoints are listed one by one
    (no ``{1...n}`` expansion): MinIO expands an ellipsis into a cross product of hosts and
    paths, and on one host each node needs its own folders. Listed without an ellipsis, the
    eight endpoints still form one server pool with one erasure set.

    Parity is set explicitly (``MINIO_STORAGE_CLASS_STANDARD=EC:2``): the two drives of one
    node. One node may be lost; a second one is beyond the parity the set was created with.

    Two settings exist only because the tests run on one host inside a container:
    ``_MINIO_SERVER_LOCAL`` names the node's own address (MinIO refuses loopback endpoints
    when it sees it is containerised, waiting for DNS that would give each node its own IP),
    and ``MINIO_CI_CD`` lets it use folders on the root file system as drives.
    """

    access_key = "haven-test"
    secret_key = "haven-test-secret-key"
    nodes = 4
    drives_per_node = 2
    parity = 2

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = [free_port() for _ in range(self.nodes)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * self.nodes
        self._logs: list[Any] = [None] * self.nodes

    def drive(self, node: int, number: int) -> Path:
        """The folder of one drive (``number`` counts from 1)."""
        return self.root / f"node{node + 1}" / f"drive{number}"

    def endpoints(self) -> list[str]:
        """The eight drive URLs every node is started with, in set order."""
        return [
            f"http://127.0.0.1:{self.ports[node]}{self.drive(node, number)}"
            for node in range(self.nodes)
            for number in range(1, self.drives_per_node + 1)
        ]

    def _spawn(self, node: int) -> None:
        for number in range(1, self.drives_per_node + 1):
            self.drive(node, number).mkdir(parents=True, exist_ok=True)
        if self._logs[node] is None:
            self._logs[node] = open(self.root / f"node{node + 1}.log", "ab")  # noqa: SIM115
        address = f"127.0.0.1:{self.ports[node]}"
        env = dict(
            os.environ,
            MINIO_ROOT_USER=self.access_key,
            MINIO_ROOT_PASSWORD=self.secret_key,
            MINIO_BROWSER="off",
            MINIO_UPDATE="off",
            MINIO_STORAGE_CLASS_STANDARD=f"EC:{self.parity}",
            MINIO_CI_CD="1",
            _MINIO_SERVER_LOCAL=address,
        )
        self.procs[node] = subprocess.Popen(
            [minio_binary(), "server", "--quiet", "--address", address, *self.endpoints()],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._logs[node],
        )

    def start(self) -> None:
        """Start every node and wait until the cluster has write quorum."""
        self.root.mkdir(parents=True, exist_ok=True)
        for node in range(self.nodes):
            self._spawn(node)
        for node in range(self.nodes):
            wait_for(lambda n=node: self.healthy(n), f"distributed MinIO node {node + 1}", 120)

    def healthy(self, node: int = 0) -> bool:
        """The node answers and sees write quorum for the whole cluster."""
        url = f"http://127.0.0.1:{self.ports[node]}/minio/health/cluster"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except urllib.error.HTTPError as exc:  # 503 until quorum: close the answer
            exc.close()
            return False

    def kill(self, node: int) -> None:
        """Kill one node at once (SIGKILL: a host losing power, not a clean shutdown)."""
        proc = self.procs[node]
        if proc is not None:
            proc.kill()
            proc.wait(timeout=30)
            self.procs[node] = None

    def revive(self, node: int) -> None:
        """Start a killed node again on its port and drives; wait for cluster health."""
        if self.procs[node] is None:
            self._spawn(node)
        for other in range(self.nodes):
            if self.procs[other] is not None:
                wait_for(lambda n=other: self.healthy(n), f"MinIO node {other + 1} healthy", 120)
        # Write quorum can return before node 1 has reconnected to every drive: wait until
        # it sees each running node's drives online (MinIO's admin API, server info).
        running = sum(p is not None for p in self.procs) * self.drives_per_node
        wait_for(lambda: self.drives_online() == running, "node 1 to see every drive", 120)

    def drives_online(self, node: int = 0) -> int:
        """How many drives ``node`` reports online in the whole cluster."""
        import json

        from minio import MinioAdmin
        from minio.credentials.providers import StaticProvider

        admin = MinioAdmin(
            endpoint=f"127.0.0.1:{self.ports[node]}",
            credentials=StaticProvider(self.access_key, self.secret_key),
            secure=False,
        )
        info = json.loads(admin.info())
        return sum(
            drive.get("state") == "ok"
            for server in info.get("servers", [])
            for drive in server.get("drives", [])
        )

    def settings(self, bucket: str, node: int = 0) -> dict[str, str]:
        """App settings that point at one node (any node serves the whole set)."""
        return {
            "HAVEN_S3_ENDPOINT": f"127.0.0.1:{self.ports[node]}",
            "HAVEN_S3_ACCESS_KEY": self.access_key,
            "HAVEN_S3_SECRET_KEY": self.secret_key,
            "HAVEN_S3_BUCKET": bucket,
        }

    def close(self) -> None:
        """Stop every node and close the logs."""
        for node in range(self.nodes):
            self.kill(node)
            if self._logs[node] is not None:
                self._logs[node].close()
                self._logs[node] = None


def caddy_binary() -> str:
    """The pinned Caddy that scripts/check-deploy installs (HAVEN_CADDY_BIN overrides)."""
    tools = Path(os.environ.get("TOOLS", Path.home() / ".cache" / "haven-tools"))
    binary = os.environ.get("HAVEN_CADDY_BIN") or str(tools / "caddy-v2.10.2" / "caddy")
    if not Path(binary).exists():
        raise RuntimeError("Caddy not found: run scripts/check-deploy (it installs it once)")
    return binary


class CaddyProxy(_LogFile):
    """Caddy in front of several app processes on loopback, plain HTTP, round robin.

    The same engine as deploy/Caddyfile, reduced to what a loopback test needs: no TLS,
    no admin API, one upstream per app process, responses streamed (event streams).
    """

    def __init__(self, root: Path, upstreams: list[str]) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.upstreams = upstreams
        self.proc: subprocess.Popen[bytes] | None = None

    def caddyfile(self) -> str:
        """The configuration: one site on loopback, every upstream in turn."""
        targets = " ".join(self.upstreams)
        return (
            "{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n}\n\n"
            f"http://127.0.0.1:{self.port} {{\n"
            f"\treverse_proxy {targets} {{\n"
            "\t\tlb_policy round_robin\n"
            "\t\tflush_interval -1\n"
            "\t}\n}\n"
        )

    def start(self) -> None:
        """Write the Caddyfile, start Caddy, wait until it forwards /healthz."""
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "Caddyfile"
        config.write_text(self.caddyfile(), encoding="utf-8")
        env = dict(os.environ, XDG_DATA_HOME=str(self.root), XDG_CONFIG_HOME=str(self.root))
        self.proc = subprocess.Popen(
            [caddy_binary(), "run", "--config", str(config), "--adapter", "caddyfile"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log("caddy.log"),
        )
        wait_for(self._forwards, "Caddy")

    def _forwards(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)

    def stop(self) -> None:
        """Stop Caddy."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None
        self._close_log()
