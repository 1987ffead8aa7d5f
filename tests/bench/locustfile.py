"""Locust users for `make bench` (tests/bench/bench_load.py runs this file headless).

Each user is one device of an account that bench_load.py registered: it signs in through
the Python client (Argon2id, key unwrapping, directory checks) and then runs a mix of what
survivors and counsel do, every request through the real protocol and the client's own
crypto. Locust's HttpSession stands in for the client's requests.Session, so Locust counts
every HTTP request; an operation that fails in the client (a refused signature, a hash
mismatch, an error answer) is counted as a failure too. Each user stops after
HAVEN_LOAD_MAX_TASKS operations, so a run is bounded in count as well as in time.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust import HttpUser, constant, task
from locust.exception import StopUser

from vault.client import HavenClient, WitnessPolicy
from vault.client.documents import Documents
from vault.client.messages import Messenger
from vault.protocol import documents as pdoc

ACCOUNTS: list[dict[str, str]] = json.loads(
    Path(os.environ["HAVEN_LOAD_ACCOUNTS"]).read_text(encoding="utf-8")
)
PASSPHRASE = os.environ.get("HAVEN_LOAD_PASSPHRASE", "correct horse battery staple")
MAX_TASKS = int(os.environ.get("HAVEN_LOAD_MAX_TASKS", "300"))
# A two-part upload: parts are at least 5 MiB (protocol §8), so 5.5 MiB takes two.
LARGE_UPLOAD = 5 * 1024 * 1024 + 512 * 1024
SMALL_UPLOAD = 256 * 1024
KEEP_DOCUMENTS = 3
_seats = itertools.count()


class HavenUser(HttpUser):
    """One device of a survivor or counsel, tireless (no think time)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Take the next account and sign in."""
        self.me = ACCOUNTS[next(_seats) % len(ACCOUNTS)]
        self.tasks_done = 0
        self.mine: list[str] = []
        self.scratch = Path(tempfile.mkdtemp(prefix="haven-load-"))
        self._op("sign_in", self._sign_in)

    def on_stop(self) -> None:
        """Remove the download folder."""
        for leftover in self.scratch.iterdir():
            leftover.unlink()
        self.scratch.rmdir()

    def _sign_in(self) -> None:
        assert self.host is not None, "run with --host"
        haven = HavenClient(self.host, witnesses=WitnessPolicy.unwitnessed())
        haven.http = self.client  # Locust records every request the client sends
        haven.login(self.me["username"], PASSPHRASE)
        self.haven = haven
        self.documents = Documents(haven, retries=0, part_chunks=pdoc.MIN_PART_CHUNKS)
        self.messenger = Messenger(haven)

    def _op(self, name: str, call: Callable[[], Any]) -> None:
        """Run one operation; a client-side failure is reported to Locust as a failure."""
        self.tasks_done += 1
        if self.tasks_done > MAX_TASKS:
            raise StopUser
        start = time.perf_counter()
        try:
            call()
        except StopUser:
            raise
        except Exception as exc:
            self.environment.events.request.fire(
                request_type="OP",
                name=name,
                response_time=(time.perf_counter() - start) * 1000,
                response_length=0,
                exception=exc,
                context={},
            )

    def _upload(self, size: int) -> None:
        doc = self.documents.upload(
            self.me["case_id"], io.BytesIO(os.urandom(size)), doc_type="passport", name="scan.jpg"
        )
        self.documents.grant(doc.id, self.me["peer_id"])
        self.mine.append(doc.id)
        if len(self.mine) > KEEP_DOCUMENTS:
            self.documents.delete(self.mine.pop(0))

    def _download_newest(self) -> None:
        listing = self.documents.case_documents(self.me["case_id"])
        if listing.refused:
            raise RuntimeError(f"{len(listing.refused)} documents refused")
        if not listing.documents:
            return
        newest = max(listing.documents, key=lambda d: d.created_at)
        target = self.scratch / newest.id
        self.documents.download(newest.id, target, document=newest)
        target.unlink()

    @task(3)
    def upload_small(self) -> None:
        """A photo of a document (one part); survivors only."""
        if self.me["role"] == "survivor":
            self._op("upload_small", lambda: self._upload(SMALL_UPLOAD))
        else:
            self._op("download", self._download_newest)

    @task(1)
    def upload_two_parts(self) -> None:
        """A scanned PDF in two resumable parts; survivors only."""
        if self.me["role"] == "survivor":
            self._op("upload_two_parts", lambda: self._upload(LARGE_UPLOAD))
        else:
            self._op("download", self._download_newest)

    @task(4)
    def send(self) -> None:
        """Send a message into the case's conversation."""
        self._op(
            "send",
            lambda: self.messenger.send(self.me["conversation_id"], f"load {self.tasks_done}"),
        )

    @task(4)
    def read(self) -> None:
        """Read, verify and decrypt the newest messages."""
        self._op("read", lambda: self.messenger.read(self.me["conversation_id"], limit=20))

    @task(1)
    def sign_in_again(self) -> None:
        """A new device: Argon2id on both sides."""
        self._op("sign_in", self._sign_in)
