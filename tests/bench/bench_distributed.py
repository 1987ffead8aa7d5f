"""Document throughput on the distributed MinIO: through the service beside raw MinIO, and
through the service while a node is down.

Four MinIO processes with two drives each (one erasure set of eight drives, EC:2, as in
tests/integration/test_distributed_storage.py) on loopback; the app under gunicorn (one
gthread worker, as bench_documents.py) pointed at node 1. For HAVEN_BENCH_DIST_MIB of
pre-encrypted bytes (default 256 MiB):

- upload through the service (create, 32 MiB parts three at a time, finalize) beside
  minio-py ``put_object`` of the same bytes to the same cluster with the same part size
  and parallelism; download through the service beside minio-py ``get_object``;
- the same service upload and download with node 4 killed (the baseline: the service with
  every node up), so the cost of rebuilding from parity shows as the ratio.

Each figure is the best of HAVEN_BENCH_DIST_ROUNDS runs (default 2), raw and service
alternating: the machine is shared, and the best run is the least disturbed one.
"""

from __future__ import annotations

import os
import time

from minio import Minio

from tests.bench.bench_documents import (
    PARALLEL_PARTS,
    PART,
    Gunicorn,
    _accounts,
    _random,
    _raw_upload,
    _service_download,
    _service_upload,
)
from tests.bench.harness import Services, emit, log
from tests.services import DistributedMinio
from vault import migrate
from vault.protocol import documents as pdoc
from vault.storage import ObjectStore

MiB = 1024**2
BUCKET = "bench-distributed"


def _raw_download(minio: Minio, size: int) -> float:
    start = time.perf_counter()
    response = minio.get_object(BUCKET, "bench/raw")
    try:
        got = sum(len(p) for p in response.stream(MiB))
    finally:
        response.close()
        response.release_conn()
    if got != size:
        raise RuntimeError(f"read {got} of {size} bytes")
    return time.perf_counter() - start


def run(services: Services) -> None:
    """Service beside raw MinIO on the four-node cluster, then the service with a node down."""
    plaintext = int(os.environ.get("HAVEN_BENCH_DIST_MIB", "256")) * MiB
    rounds = int(os.environ.get("HAVEN_BENCH_DIST_ROUNDS", "2"))
    root = services.root / "distributed"
    root.mkdir()
    cluster = DistributedMinio(root / "minio")
    cluster.start()
    name = f"bench_distributed_{os.getpid()}"
    services.postgres.execute(f"CREATE DATABASE {name}")
    url = services.postgres.url(name)
    migrate.upgrade(url)
    settings = {
        "HAVEN_DATABASE_URL": url,
        "HAVEN_KEYS_DIR": str(root / "keys"),
        "HAVEN_SECURE_COOKIES": "false",
        "HAVEN_SERVER_HASH_OPSLIMIT": "1",
        "HAVEN_SERVER_HASH_MEMLIMIT": "8192",
        "HAVEN_RATELIMIT_ENABLED": "false",
        "HAVEN_DOCUMENT_MAX_BYTES": str(2 * 1024 * MiB),
        "HAVEN_DOCUMENT_QUOTA_BYTES": str(64 * 1024 * MiB),
        **cluster.settings(BUCKET),
    }
    ObjectStore(
        settings["HAVEN_S3_ENDPOINT"], cluster.access_key, cluster.secret_key, BUCKET
    ).ensure_bucket()
    raw = Minio(
        settings["HAVEN_S3_ENDPOINT"],
        access_key=cluster.access_key,
        secret_key=cluster.secret_key,
        secure=False,
    )
    server = Gunicorn(settings, root)
    try:
        client, case_id = _accounts(server.url, settings)
        size = pdoc.ciphertext_size(plaintext)
        log(f"bench: distributed: {size} bytes of ciphertext, best of {rounds}")
        data = _random(size)
        times: dict[str, list[float]] = {k: [] for k in ("up", "down", "raw_up", "raw_down")}
        kept: list[str] = []
        for _ in range(rounds):
            times["raw_up"].append(_raw_upload(raw, data, BUCKET))
            seconds, doc_id = _service_upload(client, case_id, data, plaintext)
            times["up"].append(seconds)
            kept.append(doc_id)
            times["raw_down"].append(_raw_download(raw, size))
            times["down"].append(_service_download(client, doc_id, size))
            raw.remove_object(BUCKET, "bench/raw")
        # A node down: writes go to six drives; reading what was written to all eight
        # rebuilds the missing shards from parity.
        cluster.kill(3)
        lost: dict[str, list[float]] = {"up": [], "down": []}
        for doc_id in kept:
            seconds, new_id = _service_upload(client, case_id, data, plaintext)
            lost["up"].append(seconds)
            lost["down"].append(_service_download(client, doc_id, size))
            for gone in (doc_id, new_id):
                client.request("DELETE", f"/documents/{gone}")
        mib = size / MiB
        common = {
            "store": "4 MinIO nodes x 2 drives, EC:2, loopback",
            "server": "gunicorn gthread, 1 worker, subprocess",
            "part_bytes": PART,
            "parallel_parts": PARALLEL_PARTS,
            "note": "measured on a 2-core machine; MinIO nodes, service and client share its cores",
        }
        emit(
            "distributed_upload_service",
            mib / min(times["up"]),
            "MiB/s",
            mib / min(times["raw_up"]),
            baseline_is="minio-py put_object of the same bytes, same part size and parallelism",
            **common,
        )
        emit(
            "distributed_download_service",
            mib / min(times["down"]),
            "MiB/s",
            mib / min(times["raw_down"]),
            baseline_is="minio-py get_object of the same bytes from the same cluster",
            **common,
        )
        emit(
            "distributed_upload_service_one_node_down",
            mib / min(lost["up"]),
            "MiB/s",
            mib / min(times["up"]),
            baseline_is="the service upload with every node up",
            **common,
        )
        emit(
            "distributed_download_service_one_node_down",
            mib / min(lost["down"]),
            "MiB/s",
            mib / min(times["down"]),
            baseline_is="the service download with every node up",
            **common,
        )
    finally:
        server.stop()
        cluster.close()
