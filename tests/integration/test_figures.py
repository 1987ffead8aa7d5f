"""Outcome reports and private figures (protocol §28) over real HTTP with PostgreSQL.

The randomization is the Python client's own (OpenDP randomized response); every published
figure is checked against the known truth within a bound the mechanism guarantees except
with a probability below 1e-9, derived below, so no draw of the noise can fail the test
by luck.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import opendp.prelude as dp
import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import insert

from tests.conftest import PASSPHRASE, LiveServer
from tests.integration.test_accounts import dump_database
from tests.integration.test_trust_attacks import _count
from vault.cases.models import Case
from vault.cli import main
from vault.client import ApiError, HavenClient
from vault.client.figures import Figures, randomize
from vault.db import database, new_id, utcnow
from vault.documents.models import Document, DocumentState
from vault.figures import services
from vault.figures.models import Budget, Outcome, Release
from vault.intake.models import IntakeEntry, IntakeReport, ReportStatus
from vault.messages.models import Conversation, Message
from vault.protocol import figures as pfig
from vault.protocol import messages as pmsg
from vault.protocol.encoding import b64encode

Create = Callable[..., tuple[HavenClient, str]]
MARKER = pfig.PLAINTEXT_KIND.encode()
# The chance, over the whole test, that any check below fails although the code is right.
DELTA = 1e-9


def _error(call: Callable[[], Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def _people(create_account: Create) -> tuple[HavenClient, HavenClient, HavenClient, str]:
    counsel, _ = create_account("counsel")
    survivor, _ = create_account("survivor", invited_by=counsel)
    admin, _ = create_account("admin")
    return counsel, survivor, admin, survivor.cases()[0]["id"]


def _true_answers(rng: random.Random) -> dict[str, str]:
    return {name: rng.choice(values) for name, values in pfig.FIELDS.items()}


def test_counsel_reports_once_members_open_the_truth_and_admins_release_until_the_budget_ends(
    create_account: Create, app: Flask, live_server: LiveServer
) -> None:
    counsel, survivor, admin, case_id = _people(create_account)
    stranger, _ = create_account("counsel")
    truth = {
        "t_visa": "granted",
        "u_visa": "denied",
        "protective_order": "obtained",
        "referral": "mental_health",
        "language": "th",
    }
    schema = Figures(counsel).schema()
    assert schema["period"] == pfig.period_of(utcnow())
    assert schema["epsilon"] == 1.0
    assert [f["name"] for f in schema["fields"]] == list(pfig.FIELDS)
    made = Figures(counsel).report(case_id, truth)["outcome"]
    assert made["case_id"] == case_id and made["submitted_by"].startswith("counsel")
    assert made["submitted_at"].endswith("Z")
    # Both members open the true answers; a stranger sees no such case.
    for member in (counsel, survivor):
        (opened,) = Figures(member).outcomes(case_id)
        assert opened.answers == truth and opened.period == schema["period"]
    assert _error(lambda: stranger.get(f"/cases/{case_id}/outcomes")).status == 404
    again = _error(lambda: Figures(counsel).report(case_id, truth))
    assert (again.status, again.code) == (409, "outcome_already_reported")
    assert _count(app, Outcome) == 1
    assert MARKER not in dump_database(app)

    # Admins release until the period's budget (4.0) cannot cover another 0.8.
    period = schema["period"]
    figures = Figures(admin)
    cost = 0.1 * len(services.CENTRAL)
    for done in range(1, 6):
        release = figures.release(period)
        assert release["epsilon"] == pytest.approx(cost)
        assert figures.releases(period)["budget"]["epsilon_spent"] == pytest.approx(done * cost)
    before = figures.releases(period)
    refused = _error(lambda: figures.release(period))
    assert (refused.status, refused.code) == (409, "budget_exhausted")
    after = figures.releases(period)
    assert after == before  # nothing spent, nothing stored
    assert len(after["releases"]) == 5
    assert after["budget"] == pytest.approx(
        {"epsilon_total": 4.0, "epsilon_spent": 4.0, "epsilon_left": 0.0}
    )
    names = [f["name"] for f in after["releases"][0]["figures"]]
    assert names == [c.name for c in services.CENTRAL] + [f"outcome.{n}" for n in pfig.FIELDS]
    # One report is below the suppression threshold: no estimate comes out of it.
    local = [f for f in after["releases"][0]["figures"] if f["kind"] == "local"]
    assert all(f["suppressed"] and f["categories"] == [] and f["reports"] == 1 for f in local)


def test_a_single_case_period_is_suppressed_and_bad_reports_change_nothing(
    create_account: Create, app: Flask, live_server: LiveServer
) -> None:
    counsel, survivor, admin, case_id = _people(create_account)
    # With every count at most 1, a published figure needs noise of at least T - 1; at
    # scale b = bound / eps <= 200 that has chance <= e^{-(T-1)/b} / 2 each: with
    # T = 10000, below 1e-21 for all six figures together.
    app.config["HAVEN_FIGURES_SUPPRESS_BELOW"] = 10_000
    period = pfig.period_of(utcnow())
    figures = Figures(counsel)
    record = b64encode(figures.seal_record(case_id, period, _true_answers(random.Random(1))))
    good = {"period": period, "epsilon": 1.0, "answers": _true_answers(random.Random(2))}
    bad_bodies = [
        ({**good, "answers": {**good["answers"], "t_visa": "approved"}}, "bad_outcome"),
        ({**good, "answers": {**good["answers"], "shoe_size": "42"}}, "bad_outcome"),
        (
            {**good, "answers": {k: v for k, v in good["answers"].items() if k != "language"}},
            "bad_outcome",
        ),
        ({**good, "epsilon": 8.0}, "bad_outcome"),
        ({**good, "period": "2019-Q1"}, "bad_period"),
        ({**good, "period": "2026-Q5"}, "bad_period"),
    ]
    for body, code in bad_bodies:
        error = _error(
            lambda b=body: counsel.post(f"/cases/{case_id}/outcomes", {**b, "record": record})
        )
        assert (error.status, error.code) == (422, code), body
    other_case = b64encode(figures.seal_record(case_id, "2019-Q1", good["answers"]))
    for wrong in (b64encode(b"not an envelope"), other_case):
        error = _error(
            lambda w=wrong: counsel.post(f"/cases/{case_id}/outcomes", {**good, "record": w})
        )
        assert (error.status, error.code) == (422, "bad_outcome")
    survivor_try = _error(
        lambda: survivor.post(f"/cases/{case_id}/outcomes", {**good, "record": record})
    )
    assert survivor_try.status == 403
    # Another counsel learns nothing of the case, not even that its body was wrong.
    stranger, _ = create_account("counsel")
    assert _error(lambda: stranger.post(f"/cases/{case_id}/outcomes", {})).status == 404
    assert _count(app, Outcome) == 0

    counsel.post(f"/cases/{case_id}/outcomes", {**good, "record": record})
    release = Figures(admin).release(period)
    assert all(f["suppressed"] for f in release["figures"])
    assert all(f["value"] is None for f in release["figures"] if f["kind"] == "central")
    assert _error(lambda: Figures(admin).release("2099-Q1")).code == "bad_period"
    assert _count(app, Release) == 1
    # Reading: the current period when none (or an empty one) is named; others checked.
    for params in ({}, {"period": ""}, {"period": period, "unknown": "x"}):
        listed = admin.get("/admin/figures/releases", **params)
        assert listed["period"] == period and len(listed["releases"]) == 1, params
    for wrong in ("2099-Q1", "2026-Q5", "Q1-2026"):
        assert _error(lambda w=wrong: Figures(admin).releases(w)).code == "bad_period"


def test_haven_figures_commands_report_release_and_list(
    create_account: Create, live_server: LiveServer
) -> None:
    counsel, survivor, admin, case_id = _people(create_account)
    env = {
        "HAVEN_URL": live_server.url,
        "HAVEN_UNWITNESSED": "true",
        "HAVEN_PASSPHRASE": PASSPHRASE,
    }
    runner = CliRunner(env={**env, "HAVEN_USERNAME": counsel.account.username})  # type: ignore[union-attr]
    args = ["--t-visa", "filed", "--u-visa", "none", "--protective-order", "sought"]
    args += ["--referral", "shelter", "--language", "ht"]
    made = runner.invoke(main, ["figures", "report", case_id, *args])
    assert made.exit_code == 0, made.output
    assert Figures(survivor).outcomes(case_id)[0].answers["language"] == "ht"
    again = runner.invoke(main, ["figures", "report", case_id, *args])
    assert again.exit_code == 1 and "already reported" in again.output
    runner = CliRunner(env={**env, "HAVEN_USERNAME": admin.account.username})  # type: ignore[union-attr]
    period = pfig.period_of(utcnow())
    released = runner.invoke(main, ["figures", "release", period])
    assert released.exit_code == 0, released.output
    assert json.loads(released.output)["epsilon"] == pytest.approx(0.8)
    listed = json.loads(runner.invoke(main, ["figures", "releases"]).output)
    assert listed["period"] == period and len(listed["releases"]) == 1
    early = runner.invoke(main, ["figures", "release", "2099-Q1"])
    assert early.exit_code == 1 and "could not release: that period has not begun" in early.output


def _activity(
    db: Any, case_ids: list[str], sender: str, rng: random.Random
) -> tuple[int, int, int]:
    """Documents (0-8) and messages (0-40) from counsel in each case now; their truths
    (clamped per case) and how many cases counsel answered."""
    now, now_ms = utcnow(), int(utcnow().timestamp() * 1000)
    docs, conversations, messages = [], [], []
    documents_truth = messages_truth = answered = 0
    for case_id in case_ids:
        ndocs, nmsgs = rng.randint(0, 8), rng.randint(0, 40)
        documents_truth += min(ndocs, 5)
        messages_truth += min(nmsgs, 20)
        answered += nmsgs > 0
        for _ in range(ndocs):
            docs.append(
                {
                    "id": new_id(),
                    "case_id": case_id,
                    "owner_id": sender,
                    "owner_key_version": 1,
                    "state": DocumentState.READY,
                    "object_name": new_id(),
                    "header": b"h",
                    "metadata_envelope": b"m",
                    "signature": b"s",
                    "owner_sealed_key": b"k",
                    "ciphertext_size": 1,
                    "chunk_count": 1,
                    "part_size": 1,
                    "part_count": 1,
                    "created_at": now,
                    "upload_expires_at": now,
                }
            )
        conversation = new_id()
        conversations.append({"id": conversation, "case_id": case_id, "last_seq": nmsgs})
        messages += [
            {
                "id": new_id(),
                "conversation_id": conversation,
                "seq": seq,
                "sender_id": sender,
                "sender_key_version": 1,
                "sent_at": now_ms,
                "ttl": 0,
                "digest": os.urandom(32),
            }
            for seq in range(1, nmsgs + 1)
        ]
    db.execute(insert(Document), docs)
    db.execute(insert(Conversation), conversations)
    db.execute(insert(Message), messages)
    return documents_truth, messages_truth, answered


def _hoeffding(n: int, epsilon: float, k: int, delta: float) -> float:
    """|estimate - truth| <= this except with chance delta (Hoeffding on n independent draws)."""
    p, q = pfig.keep_probability(epsilon, k), pfig.other_probability(epsilon, k)
    return math.sqrt(n * math.log(2 / delta) / 2) / (p - q)


def test_released_figures_of_a_synthetic_population_match_the_truth_within_their_bounds(
    create_account: Create, app: Flask, live_server: LiveServer
) -> None:
    counsel, survivor, admin, _ = _people(create_account)
    assert counsel.account is not None
    rng = random.Random(20261130)
    n = 3000
    period = pfig.period_of(utcnow())
    truths = [_true_answers(rng) for _ in range(n)]
    me = counsel.account
    rows, cases = [], []
    for answers in truths:
        case_id = new_id()
        cases.append({"id": case_id, "survivor_id": survivor.account.id, "created_at": utcnow()})  # type: ignore[union-attr]
        header = pmsg.Header(
            conversation_id=pfig.conversation_id(case_id, period),
            message_id=pmsg.new_message_id(),
            sender_id=me.id,
            sender_key_version=me.keys.version,
            sent_at=0,
            ttl=0,
            recipients=(pmsg.Recipient(me.id, me.keys.version),),
        )
        sealed = pmsg.compose(
            header, pfig.plaintext(period, answers), me.keys, {me.id: me.public_keys.x25519}
        )
        rows.append(
            {
                "id": new_id(),
                "case_id": case_id,
                "period": period,
                "epsilon": 1.0,
                "answers": randomize(answers, 1.0),
                "record": pmsg.json_bytes(sealed),
                "submitted_by": me.id,
                "submitted_at": utcnow(),
            }
        )
    with app.app_context():
        db = database(app).sessions()
        db.execute(insert(Case), cases)
        db.execute(insert(Outcome), rows)
        documents, messages, answered = _activity(db, [c["id"] for c in cases[:600]], me.id, rng)
        db.commit()
        db.close()

    release = Figures(admin).release(period)
    assert release["confidence"] == 0.95
    # Truth of the central figures: what this test made in the period.
    expected = {
        "accounts_survivor": 1,
        "accounts_counsel": 1,
        "cases_opened": n + 1,
        "documents_uploaded": documents,
        "messages_sent": messages,
        "intake_reports": 0,
        "cases_answered_within_7d": answered,
        "intake_answered_within_2d": 0,
    }
    checks = len(services.CENTRAL) + sum(len(v) for v in pfig.FIELDS.values())
    delta = DELTA / checks  # union bound over every check
    threshold = app.config["HAVEN_FIGURES_SUPPRESS_BELOW"]
    by_name = {f["name"]: f for f in release["figures"]}
    for central in services.CENTRAL:
        figure = by_name[central.name]
        scale = central.bound / 0.1
        assert figure["epsilon"] == 0.1 and figure["scale"] == scale
        # P(|noise| >= bound) = delta for the discrete Laplace noise OpenDP adds.
        bound = dp.discrete_laplacian_scale_to_accuracy(scale, delta)
        truth = expected[central.name]
        if figure["suppressed"]:
            assert truth < threshold + bound
        else:
            assert abs(figure["value"] - truth) <= bound
            half = dp.discrete_laplacian_scale_to_accuracy(scale, 0.05)
            assert figure["interval"] == pytest.approx(
                [figure["value"] - half, figure["value"] + half]
            )
    for busy in ("cases_opened", "documents_uploaded", "messages_sent"):
        assert not by_name[busy]["suppressed"], busy

    for name, values in pfig.FIELDS.items():
        figure = by_name[f"outcome.{name}"]
        assert figure["reports"] == n and not figure["suppressed"]
        estimates = {c["value"]: c for c in figure["categories"]}
        assert list(estimates) == list(values)
        # The estimator is unbiased and its estimates always add up to n exactly.
        assert sum(c["estimate"] for c in figure["categories"]) == pytest.approx(n)
        bound = _hoeffding(n, 1.0, len(values), delta)
        for value in values:
            truth = sum(1 for t in truths if t[name] == value)
            got = estimates[value]
            assert abs(got["estimate"] - truth) <= bound, (name, value)
            lo, hi = got["interval"]
            assert lo < got["estimate"] < hi

    # The server holds no true answer: per field, the stored answer differs from the truth
    # in about 1 - p of the cases (at least that minus Hoeffding's slack), and no record
    # opens without a member's key.
    for name, values in pfig.FIELDS.items():
        differ = sum(1 for t, r in zip(truths, rows, strict=True) if r["answers"][name] != t[name])
        p = pfig.keep_probability(1.0, len(values))
        assert differ / n >= (1 - p) - math.sqrt(math.log(len(pfig.FIELDS) / DELTA) / (2 * n))
    assert MARKER not in dump_database(app)
    with app.app_context():
        db = database(app).sessions()
        assert db.get(Budget, period).epsilon_spent == pytest.approx(0.8)  # type: ignore[union-attr]
        db.close()


def test_response_time_figures_count_first_answers_inside_their_window(
    create_account: Create, app: Flask
) -> None:
    counsel, survivor, _, _ = _people(create_account)
    assert counsel.account is not None and survivor.account is not None
    start, end = pfig.period_bounds(pfig.period_of(utcnow()))
    opened = start + timedelta(hours=1)
    # Counsel answers one case after 6 days and another after 8; in a third only the
    # survivor writes; a fourth has no message. The team answers one report after a day and
    # another after three; in a third only the reporter wrote.
    replies = {"6d": (counsel, 6), "8d": (counsel, 8), "self": (survivor, 1), "none": None}
    cases, conversations, messages = [], [], []
    for label, reply in replies.items():
        case_id = new_id()
        cases.append({"id": case_id, "survivor_id": survivor.account.id, "created_at": opened})
        if reply is None:
            continue
        author, days = reply
        conversations.append({"id": label, "case_id": case_id, "last_seq": 1})
        messages.append(
            {
                "id": new_id(),
                "conversation_id": label,
                "seq": 1,
                "sender_id": author.account.id,  # type: ignore[union-attr]
                "sender_key_version": 1,
                "sent_at": 0,
                "ttl": 0,
                "digest": os.urandom(32),
                "received_at": opened + timedelta(days=days),
            }
        )
    reports, entries = [], []
    for author, days in ((counsel.account.id, 1), (counsel.account.id, 3), (None, 0)):
        report_id = new_id()
        reports.append(
            {
                "id": report_id,
                "lookup": os.urandom(32),
                "box_public": os.urandom(32),
                "sign_public": os.urandom(32),
                "reporter_key": b"k",
                "status": ReportStatus.NEW,
                "created_at": opened,
                "last_activity_at": opened,
            }
        )
        entries.append(
            {
                "id": new_id(),
                "report_id": report_id,
                "seq": 1,
                "author_id": author,
                "key_version": 1,
                "ciphertext": b"c",
                "signature": b"s",
                "created_at": opened + timedelta(days=days),
            }
        )
    with app.app_context():
        db = database(app).sessions()
        db.execute(insert(Case), cases)
        db.execute(insert(Conversation), conversations)
        db.execute(insert(Message), messages)
        db.execute(insert(IntakeReport), reports)
        db.execute(insert(IntakeEntry), entries)
        db.commit()
        counts = services.true_counts(db, start, end)
        db.close()
    assert counts["cases_answered_within_7d"] == 1
    assert counts["intake_answered_within_2d"] == 1
