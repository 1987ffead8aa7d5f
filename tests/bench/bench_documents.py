"""Document vault throughput and memory, each beside a baseline measured in the same run.

The service runs under gunicorn (one gthread worker, as in production) in a subprocess on
PostgreSQL and MinIO from the bench harness. For 1 GiB of pre-encrypted bytes:

- upload through the service (create, 32 MiB parts three at a time, finalize) beside
  minio-py ``put_object`` of the same bytes to the same MinIO at the same part size and
  parallelism (32 MiB parts, three at a time): the raw object store doing the same work;
- the same upload as the server's own S3 calls straight to MinIO (streamed parts signed
  UNSIGNED-PAYLOAD, as the service sends them; minio-py hashes each part first over
  plain HTTP, which the service does not);
- download through the service beside minio-py ``get_object``, both one stream read in
  1 MiB pieces;
- the gunicorn worker's peak RSS growth during the upload (VmHWM after, VmRSS before, with
  the peak reset through /proc/<pid>/clear_refs);
- the Python client's encrypt-and-upload of a 1 GiB file (same part size and parallelism)
  beside the slower of plain PyNaCl secretstream encryption of the same bytes and the
  service upload of pre-encrypted bytes above, and the client process's peak RSS (it runs
  in a subprocess: its VmHWM measures the client alone).

``HAVEN_BENCH_DOCUMENT_MIB`` (default 1024) and ``HAVEN_BENCH_ROUNDS`` (default 3) shrink
it for a quick run; the figure names keep "1GiB".

Each service throughput is the median of several runs (3 uploads, 9 downloads each way),
raw and service runs alternating (downloads in pairs whose order alternates), with dirty
pages flushed before each upload (MinIO writes to the same disk in both); beside it the
median of each run's ratio to the baseline run next to it, which a load swing between
pairs does not move, and the best run of each side. The bytes are random (MinIO does not
compress them).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import nacl.bindings as sodium
import requests
from minio import Minio
from sqlalchemy.orm import Session

from tests.bench.harness import Services, emit, log
from tests.services import free_port, wait_for
from vault import migrate
from vault.accounts import services as accounts
from vault.accounts.models import Role
from vault.client import HavenClient, WitnessPolicy
from vault.client.documents import DEFAULT_PARALLEL_PARTS, DEFAULT_PART_CHUNKS, Documents
from vault.db import make_engine
from vault.protocol import documents as pdoc
from vault.protocol.encoding import b64encode
from vault.storage import ObjectStore

GiB = 1024**3
MiB = 1024**2
PLAINTEXT = int(os.environ.get("HAVEN_BENCH_DOCUMENT_MIB", "1024")) * MiB
ROUNDS = int(os.environ.get("HAVEN_BENCH_ROUNDS", "3"))
DOWNLOADS_PER_ROUND = 3
PASSPHRASE = "correct horse battery staple"
BUCKET = "bench-documents"
# 32 MiB parts (the Python client's size), three at a time (minio-py's default), for the
# service, the raw baseline and the client alike.
PART = DEFAULT_PART_CHUNKS * pdoc.CHUNK_CIPHERTEXT_BYTES
PARALLEL_PARTS = DEFAULT_PARALLEL_PARTS
CLIENT_COMMAND = [sys.executable, "-m", "tests.bench.bench_documents"]
T = TypeVar("T")


def _settings(services: Services, root: Path) -> dict[str, str]:
    name = f"bench_documents_{os.getpid()}"
    services.postgres.execute(f"CREATE DATABASE {name}")
    url = services.postgres.url(name)
    migrate.upgrade(url)
    return {
        "HAVEN_DATABASE_URL": url,
        "HAVEN_KEYS_DIR": str(root / "keys"),
        "HAVEN_SECURE_COOKIES": "false",
        "HAVEN_SERVER_HASH_OPSLIMIT": "1",
        "HAVEN_SERVER_HASH_MEMLIMIT": "8192",
        "HAVEN_RATELIMIT_ENABLED": "false",
        "HAVEN_DOCUMENT_MAX_BYTES": str(2 * GiB),
        "HAVEN_DOCUMENT_QUOTA_BYTES": str(64 * GiB),
        **services.minio.settings(BUCKET),
    }


class Gunicorn:
    """The app under gunicorn in a subprocess: one gthread worker."""

    def __init__(self, settings: dict[str, str], root: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (root / "gunicorn.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                "1",
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--timeout",
                "300",
                "--bind",
                f"127.0.0.1:{self.port}",
                "vault.wsgi:app",
            ],
            env={**os.environ, **settings},
            stdout=self.log,
            stderr=self.log,
        )
        wait_for(lambda: requests.get(f"{self.url}/healthz", timeout=1).ok, "gunicorn")

    @property
    def worker_pid(self) -> int:
        """The (single) worker process, child of the master."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])

    def status(self, field: str) -> int:
        """A VmRSS/VmHWM line of the worker's /proc status, in bytes."""
        for line in Path(f"/proc/{self.worker_pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def reset_peak(self) -> None:
        """Set the worker's VmHWM to its current RSS."""
        Path(f"/proc/{self.worker_pid}/clear_refs").write_text("5")

    def stop(self) -> None:
        """Stop gunicorn."""
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def _accounts(server: str, settings: dict[str, str]) -> tuple[HavenClient, str]:
    engine = make_engine(settings["HAVEN_DATABASE_URL"])
    with Session(engine) as db:
        _, token = accounts.create_invite(db, Role.COUNSEL, None, 1)
    engine.dispose()
    counsel = HavenClient(server, witnesses=WitnessPolicy.unwitnessed(), timeout=600)
    counsel.register(b64encode(token), "counsel.bench", PASSPHRASE)
    survivor = HavenClient(server, witnesses=WitnessPolicy.unwitnessed(), timeout=600)
    survivor.register(counsel.create_invite("survivor"), "survivor.bench", PASSPHRASE)
    return survivor, survivor.cases()[0]["id"]


def _random(size: int) -> bytearray:
    data = bytearray(size)
    block = 64 * MiB
    for first in range(0, size, block):
        piece = os.urandom(min(block, size - first))
        data[first : first + len(piece)] = piece
    return data


def _create(client: HavenClient, case_id: str, size: int) -> str:
    """Register an upload of pre-encrypted content (valid record, arbitrary ciphertext)."""
    account = client.account
    assert account is not None
    raw_id = pdoc.generate_document_id()
    file_key = pdoc.generate_file_key()
    header = pdoc.ContentEncryptor(file_key).header
    info = pdoc.DocumentInfo(
        "bench.bin", "application/octet-stream", size, "other", None, bytes(32)
    )
    metadata = pdoc.seal_metadata(info, file_key, raw_id, case_id, account.id, header)
    total = pdoc.ciphertext_size(size)
    record = pdoc.SignedDocument(raw_id, case_id, account.id, 1, header, total, metadata)
    body = {
        "id": b64encode(raw_id),
        "key_version": 1,
        "header": b64encode(header),
        "metadata": b64encode(metadata),
        "signature": b64encode(record.sign(account.keys)),
        "sealed_key": b64encode(
            pdoc.seal_file_key(file_key, raw_id, account.public_keys.x25519, 1)
        ),
        "ciphertext_size": total,
        "chunk_count": pdoc.chunk_count(size),
        "part_size": PART,
    }
    client.post(f"/cases/{case_id}/documents", body)
    return b64encode(raw_id)


def _each_part(size: int, send: Callable[[int], T]) -> list[T]:
    """``send`` every part number of ``size`` bytes in PART parts, PARALLEL_PARTS at a time."""
    with ThreadPoolExecutor(PARALLEL_PARTS) as pool:
        return list(pool.map(send, range(1, pdoc.part_count(size, PART) + 1)))


def _service_upload(
    client: HavenClient, case_id: str, data: bytearray, plaintext: int = PLAINTEXT
) -> tuple[float, str]:
    view = memoryview(data)
    sessions = []
    for _ in range(PARALLEL_PARTS):
        session = requests.Session()
        session.cookies.update(client.http.cookies)
        sessions.append(session)
    start = time.perf_counter()
    doc_id = _create(client, case_id, plaintext)

    def send(number: int) -> None:
        first = (number - 1) * PART
        answer = sessions[number % PARALLEL_PARTS].put(
            f"{client.base_url}/api/v1/documents/{doc_id}/parts/{number}",
            data=bytes(view[first : first + PART]),
            headers={"Content-Type": "application/octet-stream"},
            timeout=600,
        )
        answer.raise_for_status()

    _each_part(len(data), send)
    client.post(f"/documents/{doc_id}/finalize")
    elapsed = time.perf_counter() - start
    for session in sessions:
        session.close()
    return elapsed, doc_id


def _service_download(client: HavenClient, doc_id: str, size: int) -> float:
    start = time.perf_counter()
    response = client.request("GET", f"/documents/{doc_id}/content", stream=True)
    got = sum(len(p) for p in response.iter_content(chunk_size=MiB))
    elapsed = time.perf_counter() - start
    assert got == size, (got, size)
    return elapsed


def _raw_upload(minio: Minio, data: bytearray, bucket: str = BUCKET) -> float:
    """minio-py put_object of the bytes at the service's part size and parallelism."""
    start = time.perf_counter()
    minio.put_object(
        bucket,
        "bench/raw",
        io.BytesIO(data),
        len(data),
        part_size=PART,
        num_parallel_uploads=PARALLEL_PARTS,
    )
    return time.perf_counter() - start


def _store_upload(store: ObjectStore, data: bytearray) -> float:
    """The server's own S3 calls without the service: streamed parts, UNSIGNED-PAYLOAD."""
    view = memoryview(data)
    start = time.perf_counter()
    upload_id = store.create_upload("bench/store")

    def send(number: int) -> tuple[int, str]:
        piece = bytes(view[(number - 1) * PART : number * PART])
        return number, store.upload_part("bench/store", upload_id, number, [piece], len(piece))

    parts = _each_part(len(data), send)
    store.complete_upload("bench/store", upload_id, parts)
    elapsed = time.perf_counter() - start
    store.remove("bench/store")
    return elapsed


def _raw_download(minio: Minio, size: int) -> float:
    start = time.perf_counter()
    response = minio.get_object(BUCKET, "bench/raw")
    try:
        got = sum(len(p) for p in response.stream(MiB))
    finally:
        response.close()
        response.release_conn()
    assert got == size
    return time.perf_counter() - start


def _mb_s(size: int, seconds: float) -> float:
    return size / MiB / seconds


def _emit_service_rate(
    bench: str, size: int, runs: list[float], baseline: list[float], baseline_is: str, **extra: Any
) -> None:
    """The service's median MiB/s beside the baseline's median, with the median of each
    run's ratio to the baseline run beside it, the best of each and every run's seconds."""
    emit(
        bench,
        _mb_s(size, statistics.median(runs)),
        "MiB/s",
        _mb_s(size, statistics.median(baseline)),
        baseline_is=baseline_is,
        server="gunicorn gthread, 1 worker, subprocess",
        **extra,
        statistic="median of runs alternating with the baseline's",
        paired_ratio_median=round(
            statistics.median(b / r for r, b in zip(runs, baseline, strict=True)), 4
        ),
        best_mib_s=round(_mb_s(size, min(runs)), 1),
        baseline_best_mib_s=round(_mb_s(size, min(baseline)), 1),
        bytes=size,
        runs_s=[round(t, 3) for t in runs],
        baseline_runs_s=[round(t, 3) for t in baseline],
        target_ratio=0.95,
    )


def run(services: Services) -> None:
    """Service beside raw MinIO for 1 GiB up and down, server memory, client encryption."""
    root = services.root / "documents"
    root.mkdir()
    settings = _settings(services, root)
    store = ObjectStore(
        settings["HAVEN_S3_ENDPOINT"],
        settings["HAVEN_S3_ACCESS_KEY"],
        settings["HAVEN_S3_SECRET_KEY"],
        BUCKET,
    )
    store.ensure_bucket()
    raw = Minio(
        settings["HAVEN_S3_ENDPOINT"],
        access_key=settings["HAVEN_S3_ACCESS_KEY"],
        secret_key=settings["HAVEN_S3_SECRET_KEY"],
        secure=False,
    )
    server = Gunicorn(settings, root)
    try:
        client, case_id = _accounts(server.url, settings)
        size = pdoc.ciphertext_size(PLAINTEXT)
        log(f"bench: documents: {size} bytes of ciphertext, {ROUNDS} alternating rounds")
        data = _random(size)
        up: list[float] = []
        down: list[float] = []
        raw_up: list[float] = []
        store_up: list[float] = []
        raw_down: list[float] = []
        growth: list[int] = []
        for _ in range(ROUNDS):
            os.sync()  # no run pays for the previous run's dirty pages
            raw_up.append(_raw_upload(raw, data))
            os.sync()
            store_up.append(_store_upload(store, data))
            os.sync()
            before = server.status("VmRSS")
            server.reset_peak()
            seconds, doc_id = _service_upload(client, case_id, data)
            growth.append(server.status("VmHWM") - before)
            up.append(seconds)
            for turn in range(DOWNLOADS_PER_ROUND):  # downloads are short: more samples
                # Each pair in turn order, so that neither side always goes first.
                if turn % 2:
                    down.append(_service_download(client, doc_id, size))
                    raw_down.append(_raw_download(raw, size))
                else:
                    raw_down.append(_raw_download(raw, size))
                    down.append(_service_download(client, doc_id, size))
            raw.remove_object(BUCKET, "bench/raw")
            client.request("DELETE", f"/documents/{doc_id}")
        _emit_service_rate(
            "documents_upload_1GiB_service",
            size,
            up,
            raw_up,
            "minio-py put_object of the same bytes, same part size and parallelism",
            part_bytes=PART,
            parallel_parts=PARALLEL_PARTS,
        )
        emit(
            "documents_upload_1GiB_service_vs_store_calls",
            _mb_s(size, min(up)),
            "MiB/s",
            _mb_s(size, min(store_up)),
            baseline_is="the server's own S3 part calls (streamed, UNSIGNED-PAYLOAD) straight "
            "to MinIO, same part size and parallelism: the store's limit for this work",
            baseline_runs_s=[round(t, 3) for t in store_up],
            target_ratio=0.95,
        )
        _emit_service_rate(
            "documents_download_1GiB_service",
            size,
            down,
            raw_down,
            "minio-py get_object of the same bytes, one stream, 1 MiB reads",
        )
        emit(
            "documents_upload_1GiB_server_peak_rss_growth",
            max(growth) / MiB,
            "MiB",
            measured="gunicorn worker VmHWM after upload - VmRSS before (peak reset)",
            target_max=64,
        )
        del data
        _client_encrypt_upload(client, case_id, root)
    finally:
        server.stop()


def _secretstream(view: memoryview) -> float:
    """Seconds for PyNaCl to push the bytes in 64 KiB chunks, no I/O."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_push(state, os.urandom(32))
    start = time.perf_counter()
    count = pdoc.chunk_count(len(view))
    for i in range(count):
        piece = bytes(view[i * pdoc.CHUNK_PLAINTEXT_BYTES : (i + 1) * pdoc.CHUNK_PLAINTEXT_BYTES])
        tag = pdoc.TAG_FINAL if i == count - 1 else pdoc.TAG_MESSAGE
        sodium.crypto_secretstream_xchacha20poly1305_push(state, piece, None, tag)
    return time.perf_counter() - start


def _client_encrypt_upload(client: HavenClient, case_id: str, root: Path) -> None:
    """Each round: secretstream alone, the service upload of pre-encrypted bytes, the client.

    The three alternate so that a load swing on the shared machine hits all of them.
    """
    source = root / "plain.bin"
    plain = _random(PLAINTEXT)
    source.write_bytes(plain)
    view = memoryview(plain)
    cipher = _random(pdoc.ciphertext_size(PLAINTEXT))
    baseline: list[float] = []
    service: list[float] = []
    runs: list[float] = []
    peaks: list[int] = []
    cpus: list[float] = []
    for _ in range(ROUNDS):
        baseline.append(_secretstream(view))
        os.sync()
        seconds, doc_id = _service_upload(client, case_id, cipher)
        service.append(seconds)
        client.request("DELETE", f"/documents/{doc_id}")
        os.sync()
        # The client in its own process, so that its peak RSS is the client's alone.
        done = subprocess.run(
            [*CLIENT_COMMAND, client.base_url, case_id, str(source)],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(done.stdout.splitlines()[-1])
        runs.append(result["seconds"])
        cpus.append(result["cpu"])
        peaks.append(result["peak_rss"])
        rss_before = result["rss_before"]
    del view, plain, cipher
    source.unlink()
    service_mib_s = _mb_s(PLAINTEXT, min(service))
    secretstream = _mb_s(PLAINTEXT, min(baseline))
    slower = min(secretstream, service_mib_s)
    emit(
        "documents_client_encrypt_upload_1GiB",
        _mb_s(PLAINTEXT, min(runs)),
        "MiB/s",
        slower,
        baseline_is="slower of PyNaCl secretstream push alone and the service upload of "
        "pre-encrypted bytes (same part size and parallelism), this run",
        secretstream_mib_s=round(secretstream, 1),
        service_upload_mib_s=round(service_mib_s, 1),
        bytes=PLAINTEXT,
        runs_s=runs,
        paired_ratio_median=round(
            statistics.median(
                _mb_s(PLAINTEXT, r) / _mb_s(PLAINTEXT, max(c, s))
                for r, s, c in zip(runs, service, baseline, strict=True)
            ),
            4,
        ),
        client_cpu_s=cpus,
        service_runs_s=[round(t, 3) for t in service],
        secretstream_runs_s=[round(t, 3) for t in baseline],
        includes="SHA-256 pass over the file, pipelined encryption and upload, finalize",
        part_bytes=PART,
        parallel_parts=PARALLEL_PARTS,
        target_ratio=0.8,
    )
    emit(
        "documents_client_encrypt_upload_1GiB_peak_rss",
        max(peaks) / MiB,
        "MiB",
        rss_before / MiB,
        baseline_is="the client process's RSS once signed in, before the first upload",
        measured="VmHWM of the client subprocess (its own peak RSS)",
    )


def _own_status(field: str) -> int:
    """A VmRSS/VmHWM line of this process's /proc status, in bytes.

    Not ``getrusage``'s ru_maxrss: Linux carries it across exec, so a child started by a
    large parent reports the parent's peak; VmHWM belongs to the child's own memory.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _client_process(server: str, case_id: str, source: Path) -> None:
    """The client side of the encrypt-and-upload figure: sign in, upload once."""
    client = HavenClient(server, witnesses=WitnessPolicy.unwitnessed(), timeout=600)
    client.login("survivor.bench", PASSPHRASE)
    docs = Documents(client, parallel_parts=PARALLEL_PARTS)
    rss_before = _own_status("VmRSS")
    cpu = time.process_time()
    start = time.perf_counter()
    doc = docs.upload(case_id, source, doc_type="other")
    seconds = round(time.perf_counter() - start, 3)
    cpu = round(time.process_time() - cpu, 3)
    peak = _own_status("VmHWM")
    docs.delete(doc.id)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_rss": peak, "rss_before": rss_before}))


if __name__ == "__main__":
    _client_process(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
