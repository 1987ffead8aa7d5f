"""Operations on two production app processes (vault/gunicorn_conf.py, two workers each) on
one PostgreSQL, Redis and MinIO: scheduled jobs run once per period across all four
workers, an abandoned upload goes by itself, the metrics endpoint answers with aggregate
series, and no log line of the main scenario carries personal data (vault/ops)."""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import requests
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select, update

from tests.conftest import FAST_SERVER_HASH, PASSPHRASE
from tests.integration.documents_fixtures import fast_documents, sha256_file, write_random_file
from tests.integration.test_messages_events import Listener
from tests.integration.test_production import Gunicorn
from tests.services import MinioServer, PostgresServer, RedisServer, wait_for
from vault import create_app
from vault.cli import main
from vault.client import HavenClient, WitnessPolicy
from vault.client.messages import Messenger
from vault.db import database, utcnow
from vault.documents.models import Document, DocumentState
from vault.ops.jobs import REGISTRY, Scheduler, register
from vault.ops.jsonlog import JsonFormatter
from vault.ops.logs import may_log_address
from vault.ops.models import JobRun
from vault.protocol.encoding import b64encode
from vault.protocol.kdf import passphrase_keys
from vault.storage import store

PERIOD = 2
TOKEN = f"ops-metrics-{secrets.token_hex(12)}"
CLIENT_IP = "203.0.113.77"


@dataclass
class Ops:
    """Two gunicorn instances with jobs on, an in-process app on the same settings, logs."""

    a: Gunicorn
    b: Gunicorn
    app: Flask
    settings: dict[str, str]
    logs: list[Path]

    def log_lines(self) -> list[dict[str, Any]]:
        """Every line both processes wrote (error, app and access logs); each must be JSON."""
        lines = []
        for path in self.logs:
            for raw in path.read_text(encoding="utf-8").splitlines():
                lines.append(json.loads(raw))
        return lines


@pytest.fixture(scope="module")
def ops(
    postgres: PostgresServer,
    redis_server: RedisServer,
    minio: MinioServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Ops]:
    """Both processes with every job on a 2 s period, metrics on, client addresses off."""
    root = tmp_path_factory.mktemp("ops")
    name = f"ops_{secrets.token_hex(5)}"
    postgres.execute(f"CREATE DATABASE {name} TEMPLATE haven_template")
    settings = {
        "HAVEN_DATABASE_URL": postgres.url(name),
        "HAVEN_REDIS_URL": redis_server.url,
        "HAVEN_KEYS_DIR": str(root / "keys"),
        "HAVEN_SECURE_COOKIES": "false",
        "HAVEN_PROXY_HOPS": "1",
        "HAVEN_JOBS_ENABLED": "true",
        **{REGISTRY[job].setting: str(PERIOD) for job in REGISTRY},
        "HAVEN_METRICS_TOKEN": TOKEN,
        **FAST_SERVER_HASH,
        **minio.settings(f"ops-{secrets.token_hex(5)}"),
    }
    app = create_app({"HAVEN_TESTING": "true", **settings})
    store(app).ensure_bucket()
    a = Gunicorn(settings, root / "a.log")
    b = Gunicorn(settings, root / "b.log")
    a.settings["HAVEN_ACCESS_LOG"] = str(root / "a-access.log")
    b.settings["HAVEN_ACCESS_LOG"] = str(root / "b-access.log")
    logs = [root / "a.log", root / "b.log", root / "a-access.log", root / "b-access.log"]
    try:
        a.start(wait=False)
        b.start(wait=False)
        a.wait()
        b.wait()
        yield Ops(a, b, app, settings, logs)
    finally:
        a.stop()
        b.stop()
        database(app).engine.dispose()


def forwarded_client(base: str) -> HavenClient:
    """A client whose requests arrive through one proxy hop from CLIENT_IP."""
    client = HavenClient(base, witnesses=WitnessPolicy.unwitnessed())
    client.http.headers.update({"X-Forwarded-For": CLIENT_IP, "X-Forwarded-Proto": "http"})
    return client


def invite_link(settings: dict[str, str], role: str) -> str:
    """`haven admin invite`, as an operator runs it."""
    result = CliRunner().invoke(main, ["admin", "invite", "--role", role], env=settings)
    assert result.exit_code == 0, result.output
    return str(result.output.strip().splitlines()[0])


def runs(app: Flask) -> list[JobRun]:
    """Every recorded job run."""
    with database(app).sessions() as db:
        return list(db.scalars(select(JobRun)))


def scrape(base: str, token: str | None = TOKEN) -> requests.Response:
    """GET /metrics with the bearer token (or none)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{base}/metrics", headers=headers, timeout=30)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in a scrape (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(f"{name}{{") and not line.startswith(f"{name} "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_each_job_runs_once_a_period_and_an_abandoned_upload_goes_by_itself(
    ops: Ops, tmp_path: Path
) -> None:
    counsel = forwarded_client(ops.a.url)
    counsel.register(invite_link(ops.settings, "counsel"), "ops-counsel", PASSPHRASE)
    survivor = forwarded_client(ops.b.url)
    survivor.register(counsel.create_invite("survivor"), "ops-survivor", PASSPHRASE)
    [case] = survivor.cases()

    # The upload stops after its first part, as a phone losing signal would.
    source = tmp_path / "visa.pdf"
    write_random_file(source, 6 * 1024 * 1024, seed=b"abandoned")

    def lose_signal(number: int) -> None:
        raise ConnectionAbortedError(f"gone after part {number}")

    with pytest.raises(ConnectionAbortedError):
        fast_documents(survivor).upload(
            case["id"], source, doc_type="visa_permit", on_part=lose_signal
        )
    with database(ops.app).sessions() as db:
        pending = db.scalars(select(Document).where(Document.state == DocumentState.PENDING)).one()
        object_name = pending.object_name
        # Its time runs out (HAVEN_UPLOAD_TTL_HOURS is at least an hour).
        db.execute(
            update(Document)
            .where(Document.id == pending.id)
            .values(upload_expires_at=utcnow() - timedelta(seconds=1))
        )
        db.commit()
        document_id = pending.id
    objects = store(ops.app)
    assert list(objects.list_uploads(object_name))

    def gone() -> bool:
        with database(ops.app).sessions() as db:
            row = db.get(Document, document_id)
        return row is None and not list(objects.list_uploads(object_name))

    wait_for(gone, "the janitor removing the abandoned upload")

    # Three periods after the first runs, every job has run in each period exactly once.
    first = min(r.period for r in runs(ops.app))
    wait_for(
        lambda: all(
            any(r.job == job and r.period >= first + 3 for r in runs(ops.app)) for job in REGISTRY
        ),
        "three more periods of every job",
    )
    rows = runs(ops.app)
    janitor = [r for r in rows if r.job == "upload_janitor"]
    assert sum(json.loads(r.counts).get("abandoned_uploads", 0) for r in janitor) == 1
    for job in REGISTRY:
        periods = sorted(r.period for r in rows if r.job == job)
        # No gaps: a 2 s period with a 0.5 s tick is never skipped by all four workers.
        assert periods == list(range(periods[0], periods[-1] + 1)), job
        assert all(r.outcome in ("ok", "running") for r in rows if r.job == job), job
    # Each of the four workers logs every run it made: no (job, period) twice across them.
    done = [
        (line["job"], line["period"])
        for line in ops.log_lines()
        if line.get("message") == "job finished"
    ]
    assert len(done) == len(set(done))
    assert set(done) >= {(r.job, r.period) for r in rows if r.period < max(periods) - 1}
    assert {line["outcome"] for line in ops.log_lines() if "outcome" in line} == {"ok"}

    # Admins see the outcomes; counsel may not.
    admin = forwarded_client(ops.a.url)
    admin.register(invite_link(ops.settings, "admin"), "ops-admin", PASSPHRASE)
    seen = admin.get("/admin/jobs", limit=5)
    assert seen["is_enabled"] is True
    assert {j["job"] for j in seen["jobs"]} == set(REGISTRY)
    assert all(j["period_seconds"] == PERIOD and j["last_run"] for j in seen["jobs"])
    assert len(seen["runs"]) == 5
    refused = counsel.http.get(f"{ops.a.url}/api/v1/admin/jobs", timeout=30)
    assert refused.status_code == 403
    bad = admin.http.get(f"{ops.b.url}/api/v1/admin/jobs?limit=0", timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"


def test_metrics_answer_aggregate_series_and_logs_carry_no_personal_data(
    ops: Ops, tmp_path: Path
) -> None:
    # The main scenario: register, upload, share, message, download, through both processes.
    counsel_invite = invite_link(ops.settings, "counsel")
    counsel = forwarded_client(ops.a.url)
    counsel.register(counsel_invite, "maria-counsel", PASSPHRASE)
    survivor_invite = counsel.create_invite("survivor")
    survivor = forwarded_client(ops.b.url)
    survivor.register(survivor_invite, "ana-survivor", PASSPHRASE)
    assert counsel.account is not None and survivor.account is not None
    [case] = survivor.cases()
    source = tmp_path / "passport-ana.jpg"
    write_random_file(source, 3 * 1024 * 1024, seed=b"ops")
    doc = fast_documents(survivor).upload(case["id"], source, doc_type="passport")
    fast_documents(survivor).grant(doc.id, counsel.account.id)
    listener = Listener(counsel)  # one live stream on process A while the messages go
    chat = Messenger(survivor)
    conversation = chat.create_conversation(case["id"], [counsel.account.id])
    chat.send(conversation.id, "my address is 12 Calle Luna")
    Messenger(counsel).send(conversation.id, "received, thank you")
    fetched = fast_documents(counsel).download(doc.id, tmp_path / "copy.jpg")
    assert fetched.sha256 == sha256_file(source)
    counsel.login("maria-counsel", PASSPHRASE)  # a sign-in on a second device

    # Metrics: the token is required, a session is not enough.
    assert scrape(ops.a.url, None).status_code == 401
    assert scrape(ops.a.url, "wrong-token-0123456789").status_code == 401
    as_counsel = counsel.http.get(f"{ops.a.url}/metrics", timeout=30)
    assert as_counsel.status_code == 401
    assert as_counsel.json()["error"]["code"] == "unauthorized"
    wait_for(
        lambda: sample(scrape(ops.a.url).text, "haven_live_streams") >= 1, "a live stream counted"
    )
    listener.close()
    # A rate limit refusing someone is counted against its route template.
    for _ in range(40):
        if (
            requests.post(
                f"{ops.b.url}/api/v1/auth/prelogin",
                json={"username": "nobody"},
                headers={"X-Forwarded-For": "198.51.100.9"},
                timeout=30,
            ).status_code
            == 429
        ):
            break
    texts = [scrape(ops.a.url).text, scrape(ops.b.url).text]
    both = "\n".join(texts)
    parts = "/api/v1/documents/<document_id>/parts/<int:part_number>"
    assert (
        sum(sample(t, "haven_http_requests_total", route=parts, status="200") for t in texts) >= 1
    )
    assert sum(sample(t, "haven_http_request_duration_seconds_count", route=parts) for t in texts)
    assert sum(sample(t, "haven_upload_parts_total") for t in texts) >= 1
    assert sum(sample(t, "haven_upload_bytes_total") for t in texts) >= 3 * 1024 * 1024
    assert "haven_live_streams" in texts[0]
    assert 'haven_object_store_errors_total{kind="unavailable"}' in both
    assert "haven_database_errors_total" in both
    assert sample(texts[1], "haven_limiter_rejections_total", route="/api/v1/auth/prelogin") >= 1
    assert sum(sample(t, "haven_job_runs_total", outcome="ok") for t in texts) >= 1
    assert sample(both, "haven_server_key_age_seconds", purpose="data") >= 0
    assert 'haven_server_key_age_seconds{purpose="session"}' in both
    # Route templates, never paths with ids in them.
    assert 'route="/api/v1/cases"' in both
    assert not re.search(r'route="/api/v1/(cases|documents)/[A-Za-z0-9_-]{16,}', both)

    # Nothing personal in a scrape or in any log line.
    cookies = [c.value for client in (counsel, survivor) for c in client.http.cookies]
    secrets_of = [
        "maria-counsel",
        "ana-survivor",
        PASSPHRASE,
        "passport-ana",
        "Calle Luna",
        CLIENT_IP,
        "198.51.100.9",
        doc.id,
        case["id"],
        conversation.id,
        counsel.account.id,
        survivor.account.id,
        counsel_invite.rsplit("=", 1)[1],
        survivor_invite.rsplit("=", 1)[1],
        *cookies,
    ]
    for client in (counsel, survivor):
        assert client.account is not None
        keys = passphrase_keys(PASSPHRASE, client.prelogin(client.account.username))
        for value in (keys.auth_key, keys.wrap_key):
            secrets_of += [b64encode(value), value.hex()]
    lines = ops.log_lines()
    access = [line for line in lines if line.get("message") == "request"]
    assert {line["route"] for line in access} >= {parts, "/api/v1/auth/login"}
    assert all(re.fullmatch(r"[0-9a-f]{16}", line["request_id"]) for line in access)
    assert all("status" in line and "duration_ms" in line for line in access)
    everything = "\n".join(json.dumps(line) for line in lines) + both
    for secret in secrets_of:
        assert secret and secret not in everything, secret


def test_client_addresses_are_logged_only_when_the_operator_turns_them_on(app: Flask) -> None:
    def access_fields(target: Flask) -> dict[str, Any]:
        """What the app hands gunicorn's access line for one request from 192.0.2.1."""
        seen: list[dict[str, Any]] = []
        inner = target.wsgi_app

        def spy(environ: dict[str, Any], start_response: Any) -> Any:
            seen.append(environ)
            return inner(environ, start_response)

        target.wsgi_app = spy  # type: ignore[method-assign]
        answer = target.test_client().get("/healthz", environ_base={"REMOTE_ADDR": "192.0.2.1"})
        assert re.fullmatch(r"[0-9a-f]{16}", answer.headers["X-Request-ID"])
        return {k: v for k, v in seen[0].items() if k.startswith("haven.")}

    off = access_fields(app)
    assert off["haven.route"] == "/healthz" and "haven.client_ip" not in off
    on = create_app({**_settings_of(app), "HAVEN_LOG_CLIENT_IP": "true"})
    assert access_fields(on)["haven.client_ip"] == "192.0.2.1"
    database(on).engine.dispose()
    # Intake routes never log the address, whatever the setting says.
    assert may_log_address("/api/v1/documents/<document_id>", True)
    assert not may_log_address("/api/v1/intake/<form_id>", True)
    assert not may_log_address("/api/v1/documents/<document_id>", False)


def _settings_of(app: Flask) -> dict[str, str]:
    """The settings a test app was made from, as environment strings."""
    cfg = app.config
    return {
        "HAVEN_TESTING": "true",
        "HAVEN_DATABASE_URL": cfg["HAVEN_DATABASE_URL"],
        "HAVEN_KEYS_DIR": cfg["HAVEN_KEYS_DIR"],
        "HAVEN_SECURE_COOKIES": "false",
        "HAVEN_JOBS_ENABLED": "false",
    }


def test_a_period_claimed_by_one_scheduler_is_skipped_by_the_next_and_failures_are_kept(
    app: Flask,
) -> None:
    calls: list[str] = []

    def flaky(target: Flask) -> dict[str, int]:
        calls.append("ran")
        raise ValueError("user ana-survivor not found")  # a message that must not be kept

    with patch.dict(REGISTRY, clear=True):
        register("flaky", flaky, setting="HAVEN_JOB_FLAKY_SECONDS", default=60)
        first, second = Scheduler(app), Scheduler(app)
        now = 1_800_000_000.0
        assert first.run_due(now) == ["flaky"]
        assert second.run_due(now + 1) == []  # the same period: already claimed
        assert second.run_due(now + 60) == ["flaky"]  # the next one
    assert calls == ["ran", "ran"]
    [one, two] = sorted(runs(app), key=lambda r: r.period)
    assert (one.job, one.period, two.period) == ("flaky", 30_000_000, 30_000_001)
    assert one.outcome == "failed" and one.error == "ValueError" and one.finished_at
    assert json.loads(one.counts) == {}


def test_json_lines_keep_the_exception_class_and_stack_but_not_its_message() -> None:
    record = logging.LogRecord("vault.x", logging.ERROR, __file__, 1, "failed", (), None)
    refused = "duplicate key (username)=(ana-survivor)"
    try:
        raise RuntimeError(refused)
    except RuntimeError:
        record.exc_info = sys.exc_info()
    record.job = "grant_expiry"
    record.username = "ana-survivor"  # not a whitelisted field
    line = json.loads(JsonFormatter().format(record))
    assert line["exception"] == "RuntimeError" and "raise RuntimeError" in line["stack"]
    assert line["job"] == "grant_expiry" and line["message"] == "failed"
    assert "ana-survivor" not in json.dumps(line)
