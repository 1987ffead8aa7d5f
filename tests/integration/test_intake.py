"""Anonymous intake (protocol §20) over real HTTP on PostgreSQL: submit, come back with the
receipt, the team's inbox, bad input, limits, retention, and what the server keeps."""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from tests.conftest import PASSPHRASE, LiveServer
from tests.leaks import assert_stored_nowhere
from tests.services import MinioServer
from vault.audit.models import AuditEntry
from vault.cli import main
from vault.client import ApiError, HavenClient
from vault.client.documents import Documents
from vault.client.intake import Inbox, Reporter
from vault.client.messages import Messenger
from vault.db import database, utcnow
from vault.intake import services
from vault.intake.models import IntakeAttachment, IntakeEntry, IntakeReport
from vault.protocol import documents as pdoc
from vault.protocol import intake as pin
from vault.protocol.encoding import b64decode, b64encode
from vault.protocol.keys import ProtocolError
from vault.protocol.transparency import TransparencyError
from vault.storage import store

REPORT = pin.Report(
    "My employer keeps my passport and I work at the Lotus nail salon",
    language="es",
    contact_way="text message only",
    contact_time="after 21:00",
    danger="yes",
)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app with an easy proof of work."""
    return make_app(HAVEN_INTAKE_POW_BITS="4")


@dataclass
class Team:
    """An admin, a counsel on the intake team, one who is not, and a reporter's device."""

    admin: HavenClient
    member: HavenClient
    outsider: HavenClient
    reporter: Reporter
    url: str

    def fresh_reporter(self) -> Reporter:
        """A reporter on a new device: nothing but the server's address."""
        return Reporter(HavenClient(self.url, witnesses=self.reporter.client.directory.witnesses))


@pytest.fixture
def team(create_account: Callable[..., tuple[HavenClient, str]], live_server: LiveServer) -> Team:
    """An intake team of one counsel, put there by an admin over HTTP."""
    admin, _ = create_account("admin", username="admin1")
    member, _ = create_account("counsel", username="intake.lawyer")
    outsider, _ = create_account("counsel", username="other.lawyer")
    assert member.account is not None
    admin.post("/intake/team/members", {"user_id": member.account.id})
    reporter = Reporter(HavenClient(live_server.url, witnesses=live_server.witnesses))
    return Team(admin, member, outsider, reporter, live_server.url)


def _kinds(app: Flask) -> list[str]:
    with app.app_context():
        db = database(app).sessions()
        try:
            return list(db.scalars(select(AuditEntry.kind).order_by(AuditEntry.seq)))
        finally:
            db.close()


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_report_reply_and_return_with_the_receipt(
    team: Team, app: Flask, minio: MinioServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    submitted = team.reporter.submit(REPORT)
    assert len(submitted.receipt.split()) == 12
    inbox = Inbox(team.member)
    [listed] = inbox.reports()
    assert listed["id"] == submitted.report_id and listed["status"] == "new"
    [first] = inbox.read(submitted.report_id)
    assert first.content == REPORT and first.author_id is None
    inbox.reply(submitted.report_id, "We can help. Is Thursday safe?")

    back = team.fresh_reporter()
    thread = back.come_back(submitted.receipt.upper())
    assert [e.content for e in thread] == [REPORT, "We can help. Is Thursday safe?"]
    assert team.member.account is not None
    assert thread[1].author_id == team.member.account.id
    back.add("Thursday after nine works")
    assert [e.content for e in back.thread()][-1] == "Thursday after nine works"

    inbox.assign(submitted.report_id, team.member.account.id)
    inbox.handled(submitted.report_id)
    assert inbox.reports()[0]["status"] == "handled"
    back.add("one more thing")
    assert inbox.reports()[0]["status"] == "assigned"
    assert inbox.read(submitted.report_id)[-1].content == "one more thing"
    kinds = _kinds(app)
    for kind in ("intake_team_add", "intake_submit", "intake_read", "intake_reply"):
        assert kind in kinds
    assert "intake_assign" in kinds and "intake_handled" in kinds

    # The app's own log lines (the test server's access lines are werkzeug's, not the app's;
    # production's access lines are vault/ops/logs.py's, which never name an intake client).
    logged = [r for r in caplog.records if r.name.startswith("vault")]
    needles = (REPORT.text, "Lotus", "Thursday", submitted.receipt, "127.0.0.1")
    assert_stored_nowhere(app, minio, logged, {n: n.encode() for n in needles})


def test_outsiders_and_the_reporter_session_stay_in_their_lane(team: Team) -> None:
    submitted = team.reporter.submit(REPORT)
    for call in (
        lambda: team.outsider.get("/intake/reports"),
        lambda: team.outsider.get(f"/intake/reports/{submitted.report_id}"),
    ):
        with pytest.raises(ApiError) as refused:
            call()
        assert (refused.value.status, refused.value.code) == (403, "not_on_team")
    # The reporter's session opens her report only: the team's routes want an account.
    with pytest.raises(ApiError) as refused:
        team.reporter.client.get("/intake/reports")
    assert refused.value.status == 401
    with pytest.raises(ApiError) as refused:
        team.reporter.client.get(f"/intake/reports/{submitted.report_id}")
    assert refused.value.status == 401
    team.reporter.client.request("DELETE", "/intake/session")
    with pytest.raises(ApiError) as refused:
        team.reporter.thread()
    assert (refused.value.status, refused.value.code) == (401, "no_intake_session")


def test_a_wrong_receipt_gets_the_answer_of_an_unknown_report(team: Team) -> None:
    submitted = team.reporter.submit(REPORT)
    answers = []
    for receipt in (pin.new_receipt(), pin.new_receipt()):
        with pytest.raises(ApiError) as refused:
            team.fresh_reporter().come_back(receipt)
        answers.append((refused.value.status, refused.value.code, refused.value.message))
    # The right lookup id with a signature by another key: the same answer again.
    http = requests.Session()
    challenge = http.post(f"{team.url}/api/v1/intake/challenges", json={}).json()["challenge"]
    keys = pin.receipt_keys(submitted.receipt)
    body = {"lookup": b64encode(keys.lookup), "challenge": challenge, "signature": "A" * 86}
    wrong = http.post(f"{team.url}/api/v1/intake/session", json=body)
    error = wrong.json()["error"]
    answers.append((wrong.status_code, error["code"], error["message"]))
    assert len(set(answers)) == 1 and answers[0][:2] == (401, "receipt_unknown")
    with pytest.raises(ProtocolError):
        pin.receipt_entropy("abandon " * 12)  # a checksum that does not fit
    with pytest.raises(ProtocolError):
        pin.receipt_entropy("not words from the list at all x y z w q r")


def test_bad_proofs_and_reused_challenges_are_refused(team: Team, app: Flask) -> None:
    reporter = team.reporter
    good = reporter.proof

    def spent() -> dict[str, str]:
        proof = good()
        with pytest.raises(ApiError):  # a session attempt spends the challenge
            reporter.client.post("/intake/session", _session_body(proof["challenge"]))
        return proof

    def weak() -> dict[str, str]:
        proof = good()
        challenge = b64decode(proof["challenge"])
        nonce = next(
            n.to_bytes(8, "little")
            for n in range(10_000)
            if not pin.pow_ok(challenge, n.to_bytes(8, "little"), 4)
        )
        return {"challenge": proof["challenge"], "nonce": b64encode(nonce)}

    for make, code in ((weak, "bad_proof"), (spent, "bad_challenge")):
        reporter.proof = make  # type: ignore[method-assign]
        with pytest.raises(ApiError) as refused:
            reporter.submit(REPORT)
        assert (refused.value.status, refused.value.code) == (400, code)
    with app.app_context():
        db = database(app).sessions()
        assert db.scalars(select(IntakeReport)).all() == []
        db.close()


def _session_body(challenge: str) -> dict[str, str]:
    """A session request no report answers (it spends the challenge)."""
    return {"lookup": "A" * 43, "challenge": challenge, "signature": "A" * 86}


def test_quota_and_rate_limits_answer_429_with_retry_after(team: Team, app: Flask) -> None:
    app.config["HAVEN_INTAKE_DAILY_QUOTA"] = 1
    team.reporter.submit(REPORT)
    with pytest.raises(ApiError) as refused:
        team.fresh_reporter().submit(REPORT)
    assert (refused.value.status, refused.value.code) == (429, "intake_quota")
    app.config["HAVEN_LIMIT_INTAKE_IP"] = "3/minute"
    http = requests.Session()
    answers = [http.post(f"{team.url}/api/v1/intake/challenges", json={}) for _ in range(4)]
    assert answers[-1].status_code == 429
    assert int(answers[-1].headers["Retry-After"]) > 0
    quota = http.post(f"{team.url}/api/v1/intake/reports", json={})
    assert quota.status_code == 429


def test_a_stale_team_is_refused(
    team: Team, create_account: Callable[..., tuple[HavenClient, str]]
) -> None:
    old_team = team.reporter.team()
    newcomer, _ = create_account("counsel", username="new.lawyer")
    assert newcomer.account is not None
    team.admin.post("/intake/team/members", {"user_id": newcomer.account.id})
    team.reporter.team = lambda: old_team  # type: ignore[method-assign]
    with pytest.raises(ApiError) as refused:
        team.reporter.submit(REPORT)
    assert (refused.value.status, refused.value.code) == (409, "stale_team")


def test_a_member_who_joined_later_reads_once_a_member_shares(
    team: Team, create_account: Callable[..., tuple[HavenClient, str]]
) -> None:
    submitted = team.reporter.submit(REPORT)
    newcomer, _ = create_account("counsel", username="new.lawyer")
    assert newcomer.account is not None
    team.admin.post("/intake/team/members", {"user_id": newcomer.account.id})
    with pytest.raises(ProtocolError):
        Inbox(newcomer).read(submitted.report_id)
    Inbox(team.member).share(submitted.report_id, newcomer.account.id)
    assert Inbox(newcomer).read(submitted.report_id)[0].content == REPORT
    # Off the team: the copy is gone with the membership.
    team.admin.request("DELETE", f"/intake/team/members/{newcomer.account.id}")
    with pytest.raises(ApiError) as refused:
        Inbox(newcomer).read(submitted.report_id)
    assert refused.value.code == "not_on_team"


def test_idle_reports_are_shredded_with_a_receipt(team: Team, app: Flask) -> None:
    kept = team.reporter.submit(REPORT)
    idle = team.fresh_reporter().submit(REPORT)
    with app.app_context():
        db = database(app).sessions()
        report = db.get(IntakeReport, idle.report_id)
        assert report is not None
        report.last_activity_at = utcnow() - timedelta(days=91)
        db.commit()
        assert services.purge(db, store(app), 90) == 1
        assert db.get(IntakeReport, idle.report_id) is None
        assert db.get(IntakeReport, kept.report_id) is not None
        left = db.scalars(select(IntakeEntry.report_id)).all()
        assert set(left) == {kept.report_id}
        db.close()
    assert _kinds(app)[-1] == "intake_shred"
    with pytest.raises(ApiError) as refused:
        team.fresh_reporter().come_back(idle.receipt)
    assert refused.value.code == "receipt_unknown"


def test_the_command_line_submits_reads_replies_and_returns(
    team: Team, live_server: LiveServer, tmp_path: Path
) -> None:
    base = {"HAVEN_URL": live_server.url, "HAVEN_UNWITNESSED": "true"}
    sent = CliRunner(env=base).invoke(main, ["intake", "submit", "--danger", "no"], input="help\n")
    assert sent.exit_code == 0, sent.output
    receipt = sent.output.strip().splitlines()[-1]
    assert len(receipt.split()) == 12
    assert team.member.account is not None
    counsel = base | {"HAVEN_USERNAME": "intake.lawyer", "HAVEN_PASSPHRASE": PASSPHRASE}
    listed = CliRunner(env=counsel).invoke(main, ["intake", "inbox"])
    report_id = listed.output.split()[0]
    read = CliRunner(env=counsel).invoke(main, ["intake", "read", report_id])
    assert "#1 reporter: help" in read.output and "in danger now: no" in read.output
    replied = CliRunner(env=counsel).invoke(main, ["intake", "reply", report_id, "call us"])
    assert replied.exit_code == 0, replied.output
    scan = tmp_path / "permit-scan.pdf"
    scan.write_bytes(b"%PDF-1.4 permit")
    back = CliRunner(env=base | {"HAVEN_RECEIPT": receipt}).invoke(
        main, ["intake", "return", "--reply", "thanks", "--attach", str(scan)]
    )
    assert back.exit_code == 0, back.output
    assert f"#2 {team.member.account.id}: call us" in back.output
    read = CliRunner(env=counsel).invoke(main, ["intake", "read", report_id])
    assert "#3 reporter: thanks" in read.output
    assert f"#4 reporter: attached permit-scan.pdf ({len(b'%PDF-1.4 permit')} bytes)" in read.output


def test_the_team_invites_her_and_the_thread_moves_into_her_case(
    team: Team, app: Flask, live_server: LiveServer
) -> None:
    submitted = team.reporter.submit(REPORT)
    photo = _photo(1 * MiB)
    team.reporter.attach(photo, PHOTO_NAME, "image/jpeg")
    assert team.member.account is not None
    link = team.member.create_invite("survivor")
    Inbox(team.member).reply(submitted.report_id, f"Open an account with us: {link}")

    device = team.fresh_reporter()
    thread = device.come_back(submitted.receipt)
    invite = str(thread[-1].content).rsplit(" ", 1)[-1]
    account = HavenClient(live_server.url, witnesses=live_server.witnesses)
    account.register(invite, "maria.l", PASSPHRASE)
    case_id = account.cases()[0]["id"]
    conversation = device.move_to_case(account, case_id, [team.member.account.id])

    texts = [m.text for m in Messenger(team.member).read(conversation)][::-1]
    assert texts[0].startswith(f"[intake #1, reporter] {REPORT.text}")
    assert texts[1] == f"[intake #2, reporter] attached {PHOTO_NAME} ({len(photo)} bytes)"
    assert texts[2] == f"[intake #3, intake.lawyer] Open an account with us: {link}"
    [moved] = Documents(team.member).case_documents(case_id).documents
    assert moved.info.name == PHOTO_NAME
    Messenger(account).send(conversation, "I am here now")
    assert Messenger(team.member).read(conversation)[0].text == "I am here now"
    with app.app_context():
        db = database(app).sessions()
        assert db.get(IntakeReport, submitted.report_id) is None
        db.close()
    assert _kinds(app).count("intake_shred") == 1
    with pytest.raises(ApiError) as refused:
        team.fresh_reporter().come_back(submitted.receipt)
    assert refused.value.code == "receipt_unknown"


@pytest.mark.parametrize("field", ["x25519", "username", "inclusion"])
def test_a_team_key_the_log_does_not_vouch_for_is_refused(team: Team, field: str) -> None:
    """A server that swaps a member's box key (or name, or proof) in GET /intake/team."""
    client = team.reporter.client
    honest = client.get("/intake/team")
    forged = copy.deepcopy(honest)
    member = forged["members"][0]
    if field == "x25519":
        for record in (member["public_keys"], *member["history"]["keys"]):
            record["x25519"] = b64encode(bytes(32))
    elif field == "username":
        member["username"] = "someone.else"
    else:
        member["inclusion"] = [b64encode(bytes(32))] * max(1, len(member["inclusion"]))
    real_get = client.get
    client.get = lambda path, **params: (  # type: ignore[method-assign]
        forged if path == "/intake/team" else real_get(path, **params)
    )
    with pytest.raises((ProtocolError, TransparencyError)):
        team.reporter.submit(REPORT)


MiB = 1024 * 1024
PHOTO_NAME = "passport-photo-lotus.jpg"


def _photo(size: int = 6 * MiB) -> bytes:
    """Random bytes with a marker a leak search can look for."""
    return b"LOTUS-PHOTO-MARKER" + os.urandom(size - 18)


def test_attachments_reach_the_team_and_leave_nothing_in_clear(
    team: Team, app: Flask, minio: MinioServer
) -> None:
    submitted = team.reporter.submit(REPORT)
    photo = _photo()
    sent: list[int] = []
    att = team.reporter.attach(
        photo, PHOTO_NAME, "image/jpeg", part_size=pdoc.MIN_PART_BYTES, on_part=sent.append
    )
    assert sent == [1, 2]
    [_, entry] = Inbox(team.member).read(submitted.report_id)
    assert entry.content == att and entry.author_id is None
    assert Inbox(team.member).fetch(submitted.report_id, att) == photo
    assert team.reporter.fetch(att) == photo
    with pytest.raises(ApiError) as refused:
        Inbox(team.outsider).fetch(submitted.report_id, att)
    assert refused.value.code == "not_on_team"
    needles = (PHOTO_NAME.encode(), b"LOTUS-PHOTO-MARKER", REPORT.text.encode())
    assert_stored_nowhere(app, minio, [], {n.decode(): n for n in needles})
    # Shredding removes the object with the rows.
    with app.app_context():
        db = database(app).sessions()
        name = db.scalars(select(IntakeAttachment.object_name)).one()
        db.close()
    team.reporter.client.request("DELETE", "/intake/session/report")
    assert store(app).size(name) is None


def test_object_store_down_mid_upload_is_503_nothing_visible_then_resumes(
    team: Team, app: Flask, minio: MinioServer
) -> None:
    submitted = team.reporter.submit(REPORT)
    photo = _photo()
    aid, key = os.urandom(16), pdoc.generate_file_key()

    def stop_after_first(number: int) -> None:
        if number == 1:
            minio.stop()

    try:
        with pytest.raises(ApiError) as down:
            team.reporter.upload(
                photo,
                part_size=pdoc.MIN_PART_BYTES,
                on_part=stop_after_first,
                attachment_id=aid,
                file_key=key,
            )
        assert (down.value.status, down.value.code) == (503, "object_store_unavailable")
        status = team.reporter.client.get(f"/intake/session/attachments/{b64encode(aid)}")
        assert status["upload"]["state"] == "pending"
        assert [p["number"] for p in status["upload"]["parts"]] == [1]
        with pytest.raises(ApiError) as hidden:
            team.member.request(
                "GET", f"/intake/reports/{submitted.report_id}/attachments/{b64encode(aid)}/content"
            )
        assert hidden.value.status == 404
    finally:
        minio.start()
    sent: list[int] = []
    got = team.reporter.upload(
        photo, part_size=pdoc.MIN_PART_BYTES, on_part=sent.append, attachment_id=aid, file_key=key
    )
    assert sent == [2]
    att = pin.Attachment(
        aid, key, got[2], "x.jpg", "image/jpeg", len(photo), hashlib.sha256(photo).digest()
    )
    assert Inbox(team.member).fetch(submitted.report_id, att) == photo
