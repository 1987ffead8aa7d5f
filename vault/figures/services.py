"""Outcome reports and private figures (protocol §28).

Counsel's client randomizes each answer before sending (local differential privacy) and
seals the true answers to the case's members; a release adds OpenDP noise to what the
server sees in clear (central differential privacy) and spends the period's budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import opendp.prelude as dp
from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vault.accounts.models import DuressLink, Role, User, UserKey
from vault.audit import chain
from vault.cases.models import Case, CaseMember
from vault.db import utcnow
from vault.documents.models import Document, DocumentState
from vault.errors import Conflict, HavenError, NotFound
from vault.figures.models import MAX_RECORD_BYTES, Budget, Outcome, Release
from vault.intake.models import IntakeEntry, IntakeReport
from vault.messages.models import Conversation, Message
from vault.protocol import figures as pfig
from vault.protocol import messages as pmsg
from vault.protocol.keys import ProtocolError, PublicKeys

dp.enable_features("contrib")

CONFIDENCE = 0.95
# Float sums of epsilons (0.1 + 0.1 + ...) are compared with this slack.
SLACK = 1e-9


class Unprocessable(HavenError):
    """Well-formed JSON whose content breaks the outcome schema."""

    status = 422
    code = "bad_outcome"


@dataclass(frozen=True)
class Settings:
    """The privacy settings a release and a report are checked against."""

    budget: float
    epsilon: float
    local_epsilon: float
    suppress_below: int


@dataclass(frozen=True)
class Central:
    """A central figure: its name and how many units one case may add to it."""

    name: str
    bound: int


# One case (its survivor, their documents and messages) or one account is the unit of
# privacy; each figure counts at most `bound` events per unit (§28.5).
CENTRAL: tuple[Central, ...] = (
    Central("accounts_survivor", 1),
    Central("accounts_counsel", 1),
    Central("cases_opened", 1),
    Central("documents_uploaded", 5),
    Central("messages_sent", 20),
    Central("intake_reports", 1),
    Central("cases_answered_within_7d", 1),
    Central("intake_answered_within_2d", 1),
)

# How soon counsel's first message in a new case, or the team's first entry in a new intake
# report, counts as an answer for the response-time figures (§28.5).
CASE_ANSWER_WITHIN = timedelta(days=7)
INTAKE_ANSWER_WITHIN = timedelta(days=2)


def settings_from(config: Mapping[str, Any]) -> Settings:
    """The figures settings of an app's config."""
    return Settings(
        budget=float(config["HAVEN_FIGURES_BUDGET"]),
        epsilon=float(config["HAVEN_FIGURES_EPSILON"]),
        local_epsilon=float(config["HAVEN_FIGURES_LOCAL_EPSILON"]),
        suppress_below=int(config["HAVEN_FIGURES_SUPPRESS_BELOW"]),
    )


def current_period() -> str:
    """The reporting period now."""
    return pfig.period_of(utcnow())


def schema(settings: Settings) -> dict[str, Any]:
    """The period, epsilon and fields a report must use."""
    return {
        "period": current_period(),
        "epsilon": settings.local_epsilon,
        "fields": [{"name": n, "values": list(v)} for n, v in pfig.FIELDS.items()],
    }


# -- outcome reports -------------------------------------------------------------------


def counsel_case(db: Session, user: User, case_id: str) -> Case:
    """A case the account is counsel in; NotFound for every other case."""
    member = db.get(CaseMember, (case_id, user.id))
    if member is None or member.role != Role.COUNSEL:
        raise NotFound("no such case")
    return member.case


def _public(db: Session, user_id: str, version: int) -> PublicKeys | None:
    key = db.scalars(
        select(UserKey).where(UserKey.user_id == user_id, UserKey.version == version)
    ).first()
    return None if key is None else PublicKeys(key.version, key.x25519, key.ed25519, key.signature)


def _check_record(db: Session, user: User, case: Case, period: str, record: bytes) -> None:
    """The record is a message envelope for this case and period, from the caller, sealed
    to exactly the case's current members at their current key versions, signed."""
    try:
        envelope = pmsg.parse_record(record)
    except ProtocolError as exc:
        raise Unprocessable(f"record: {exc}") from exc
    header = envelope.header
    if header.conversation_id != pfig.conversation_id(case.id, period):
        raise Unprocessable("record: sealed for another case or period")
    if header.sender_id != user.id or header.sender_key_version != user.key_version:
        raise Unprocessable("record: sign it with your current key")
    members = {m.user_id: m.user.key_version for m in case.members}
    named = {r.user_id: r.key_version for r in header.recipients}
    if named != members:
        raise Unprocessable("record: seal it to exactly the case's members, current keys")
    public = _public(db, user.id, user.key_version)
    try:
        if public is None:
            raise ProtocolError("no published key")
        envelope.verify(public)
    except ProtocolError as exc:
        raise Unprocessable(f"record: {exc}") from exc


def report_outcome(
    db: Session,
    user: User,
    case_: Case,
    settings: Settings,
    *,
    period: str,
    epsilon: float,
    answers: Mapping[str, object],
    record: bytes,
) -> Outcome:
    """Store this period's randomized answers and sealed record of a case from counsel_case."""
    if period != current_period():
        raise Unprocessable("report for the current period only", code="bad_period")
    if abs(epsilon - settings.local_epsilon) > SLACK:
        raise Unprocessable(f"epsilon must be {settings.local_epsilon}")
    try:
        randomized = pfig.check_answers(answers)
    except pfig.OutcomeError as exc:
        raise Unprocessable(str(exc)) from exc
    if len(record) > MAX_RECORD_BYTES:
        raise Unprocessable("record: at most 64 KiB")
    _check_record(db, user, case_, period, record)
    outcome = Outcome(
        case_id=case_.id,
        period=period,
        epsilon=settings.local_epsilon,
        answers=randomized,
        record=record,
        submitted_by=user.id,
    )
    db.add(outcome)
    try:
        db.flush()
    except IntegrityError as exc:
        db.rollback()
        raise Conflict(
            "this case has already reported for this period", code="outcome_already_reported"
        ) from exc
    chain.append(db, "outcome_reported", actor_id=user.id, detail={"period": period})
    db.commit()
    return outcome


def list_outcomes(db: Session, user: User, case_id: str) -> list[tuple[Outcome, User | None]]:
    """A case's reports, newest first, with who submitted each; members only."""
    if db.get(CaseMember, (case_id, user.id)) is None:
        raise NotFound("no such case")
    query = (
        select(Outcome, User)
        .outerjoin(User, User.id == Outcome.submitted_by)
        .where(Outcome.case_id == case_id)
        .order_by(Outcome.submitted_at.desc(), Outcome.id)
    )
    return [(o, u) for o, u in db.execute(query)]


# -- central figures -------------------------------------------------------------------


def _decoys() -> Select[tuple[str]]:
    return select(DuressLink.decoy_id)


def true_counts(db: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Every central figure's count before noise, each case's part clamped to its bound."""
    real_cases = Case.survivor_id.not_in(_decoys())
    accounts = (
        select(func.count())
        .select_from(User)
        .where(User.id.not_in(_decoys()), User.created_at >= start, User.created_at < end)
    )
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    docs = (
        select(Document.case_id, func.count().label("n"))
        .join(Case, Case.id == Document.case_id)
        .where(
            real_cases,
            Document.state == DocumentState.READY,
            Document.created_at >= start,
            Document.created_at < end,
        )
        .group_by(Document.case_id)
    )
    messages = (
        select(Conversation.case_id, func.count().label("n"))
        .join(Message, Message.conversation_id == Conversation.id)
        .join(Case, Case.id == Conversation.case_id)
        .where(real_cases, and_(Message.sent_at >= start_ms, Message.sent_at < end_ms))
        .group_by(Conversation.case_id)
    )
    bounds = {c.name: c.bound for c in CENTRAL}

    def clamped(per_case: Any, bound: int) -> int:
        sub = per_case.subquery()
        total = select(func.sum(case((sub.c.n > bound, bound), else_=sub.c.n)))
        return int(db.scalar(total) or 0)

    cases = (
        select(func.count())
        .select_from(Case)
        .where(real_cases, Case.created_at >= start, Case.created_at < end)
    )
    reports = (
        select(func.count())
        .select_from(IntakeReport)
        .where(IntakeReport.created_at >= start, IntakeReport.created_at < end)
    )
    first_reply = (
        select(Case.created_at, func.min(Message.received_at))
        .join(Conversation, Conversation.case_id == Case.id)
        .join(Message, Message.conversation_id == Conversation.id)
        .join(User, User.id == Message.sender_id)
        .where(real_cases, Case.created_at >= start, Case.created_at < end)
        .where(User.role == Role.COUNSEL)
        .group_by(Case.id, Case.created_at)
    )
    first_answer = (
        select(IntakeReport.created_at, func.min(IntakeEntry.created_at))
        .join(IntakeEntry, IntakeEntry.report_id == IntakeReport.id)
        .where(IntakeReport.created_at >= start, IntakeReport.created_at < end)
        .where(IntakeEntry.author_id.is_not(None))
        .group_by(IntakeReport.id, IntakeReport.created_at)
    )
    return {
        "cases_answered_within_7d": _answered(db, first_reply, CASE_ANSWER_WITHIN),
        "intake_answered_within_2d": _answered(db, first_answer, INTAKE_ANSWER_WITHIN),
        "accounts_survivor": int(db.scalar(accounts.where(User.role == Role.SURVIVOR)) or 0),
        "accounts_counsel": int(db.scalar(accounts.where(User.role == Role.COUNSEL)) or 0),
        "cases_opened": int(db.scalar(cases) or 0),
        "documents_uploaded": clamped(docs, bounds["documents_uploaded"]),
        "messages_sent": clamped(messages, bounds["messages_sent"]),
        "intake_reports": int(db.scalar(reports) or 0),
    }


def _answered(db: Session, firsts: Select[datetime, datetime], within: timedelta) -> int:
    """How many of (opened, first answer) pairs were answered within ``within``."""
    return sum(1 for opened, first in db.execute(firsts) if first - opened <= within)


def _central_figure(figure: Central, count: int, settings: Settings) -> dict[str, Any]:
    """The count with discrete Laplace noise at scale bound/epsilon, through OpenDP."""
    scale = figure.bound / settings.epsilon
    measurement = dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=scale)
    # OpenDP's own privacy map must agree that one case costs at most epsilon.
    if measurement.map(figure.bound) > settings.epsilon + SLACK:  # type: ignore[no-untyped-call]
        raise RuntimeError(f"{figure.name}: the noise does not give epsilon {settings.epsilon}")
    noisy = int(measurement(count))
    half = float(dp.discrete_laplacian_scale_to_accuracy(scale, 1 - CONFIDENCE))
    suppressed = noisy < settings.suppress_below
    return {
        "name": figure.name,
        "kind": "central",
        "mechanism": "discrete_laplace",
        "epsilon": settings.epsilon,
        "bound": figure.bound,
        "scale": scale,
        "value": None if suppressed else noisy,
        "interval": None if suppressed else [noisy - half, noisy + half],
        "suppressed": suppressed,
    }


def _local_figures(db: Session, period: str, settings: Settings) -> list[dict[str, Any]]:
    """Per field, the estimated count of every value among the period's reports."""
    eps = settings.local_epsilon
    rows = db.scalars(
        select(Outcome.answers).where(
            Outcome.period == period,
            Outcome.epsilon > eps - SLACK,
            Outcome.epsilon < eps + SLACK,
        )
    ).all()
    n = len(rows)
    figures = []
    for name in pfig.FIELDS:
        counts: dict[str, int] = {}
        for answers in rows:
            value = answers.get(name)
            if isinstance(value, str):
                counts[value] = counts.get(value, 0) + 1
        suppressed = n < settings.suppress_below
        categories = (
            []
            if suppressed
            else [
                {"value": e.value, "estimate": e.estimate, "interval": list(e.interval)}
                for e in pfig.estimate_field(name, counts, n, eps, CONFIDENCE)
            ]
        )
        figures.append(
            {
                "name": f"outcome.{name}",
                "kind": "local",
                "mechanism": "randomized_response",
                "epsilon": eps,
                "reports": n,
                "categories": categories,
                "suppressed": suppressed,
            }
        )
    return figures


def check_period(period: str) -> tuple[datetime, datetime]:
    """A period up to the current one, or 422 bad_period."""
    try:
        bounds = pfig.period_bounds(period)
    except pfig.OutcomeError as exc:
        raise Unprocessable(str(exc), code="bad_period") from exc
    if bounds[0] > utcnow():
        raise Unprocessable("that period has not begun", code="bad_period")
    return bounds


def release_cost(settings: Settings) -> float:
    """The epsilon one release spends: every central figure's (local ones cost nothing)."""
    return round(settings.epsilon * len(CENTRAL), 9)


def _budget(db: Session, period: str, settings: Settings, *, lock: bool) -> Budget:
    query = select(Budget).where(Budget.period == period)
    found = db.scalars(query.with_for_update() if lock else query).first()
    if found is not None:
        return found
    budget = Budget(period=period, epsilon_total=settings.budget, epsilon_spent=0.0)
    if not lock:
        return budget
    db.add(budget)
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        return db.scalars(query.with_for_update()).one()
    return budget


def budget_json(budget: Budget) -> dict[str, float]:
    """Total, spent and left of a period's budget."""
    left = max(budget.epsilon_total - budget.epsilon_spent, 0.0)
    return {
        "epsilon_total": round(budget.epsilon_total, 9),
        "epsilon_spent": round(budget.epsilon_spent, 9),
        "epsilon_left": round(left, 9),
    }


def release(db: Session, period: str, settings: Settings, actor_id: str) -> Release:
    """Release every figure of a period, spending its epsilon, or 409 budget_exhausted."""
    start, end = check_period(period)
    budget = _budget(db, period, settings, lock=True)
    cost = release_cost(settings)
    if budget.epsilon_spent + cost > budget.epsilon_total + SLACK:
        db.rollback()
        raise Conflict(
            f"the budget of {period} cannot cover another release (needs {cost})",
            code="budget_exhausted",
        )
    counts = true_counts(db, start, end)
    figures = [_central_figure(f, counts[f.name], settings) for f in CENTRAL]
    figures += _local_figures(db, period, settings)
    budget.epsilon_spent = round(budget.epsilon_spent + cost, 9)
    made = Release(period=period, epsilon=cost, confidence=CONFIDENCE, figures=figures)
    db.add(made)
    db.flush()
    chain.append(
        db, "figures_released", actor_id=actor_id, detail={"period": period, "epsilon": cost}
    )
    db.commit()
    return made


def releases(db: Session, period: str, settings: Settings) -> tuple[Budget, list[Release]]:
    """A period's budget and its stored releases, newest first; reading spends nothing."""
    check_period(period)
    query = (
        select(Release)
        .where(Release.period == period)
        .order_by(Release.created_at.desc(), Release.id)
    )
    return _budget(db, period, settings, lock=False), list(db.scalars(query))


def release_json(made: Release) -> dict[str, Any]:
    """A release as the API shows it."""
    return {
        "id": made.id,
        "period": made.period,
        "created_at": made.created_at.isoformat().replace("+00:00", "Z"),
        "epsilon": made.epsilon,
        "confidence": made.confidence,
        "figures": made.figures,
    }
