"""`haven verify` on a 64 MiB evidence bundle, beside one SHA-256 pass over the same archive.

The bundle is the vector's (tests/vectors/bundle.py) with a larger file, zipped as the
exporter zips it. The verifier reads the file twice (its manifest hash, then the signed
SHA-256), so a ratio near 2 means the rest of the checks cost little. Measured, never
asserted.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import zipfile
from pathlib import Path

from tests.bench.harness import Services, emit, log, timer
from tests.vectors import bundle as vector
from vault.client.verify import verify_bundle

SIZE = 64 * 1024 * 1024
ROUNDS = 3


def _zip(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder).as_posix())
    return out


def _sha256(path: Path) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(1024 * 1024):
            digest.update(piece)


def run(services: Services) -> None:
    """Median seconds to verify the bundle, and to hash it once (the baseline)."""
    del services  # offline: no database, store or network
    with tempfile.TemporaryDirectory() as tmp:
        log("bench_bundle: building a 64 MiB bundle")
        vector.build(Path(tmp) / "bundle", os.urandom(SIZE))
        archive = _zip(Path(tmp) / "bundle", Path(tmp) / "bundle.zip")
        verify_times, hash_times = [], []
        for _ in range(ROUNDS):
            with timer() as elapsed:
                assert verify_bundle(archive).is_valid
            verify_times.append(elapsed())
            with timer() as elapsed:
                _sha256(archive)
            hash_times.append(elapsed())
        seconds = statistics.median(verify_times)
        emit("bundle_verify_64mib", seconds, "s", statistics.median(hash_times))
        emit("bundle_verify_rate", SIZE / seconds / 1024 / 1024, "MiB/s")
