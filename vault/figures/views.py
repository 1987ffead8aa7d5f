"""Outcome reports and private figures (protocol §28): thin routes over figures.services."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, current_app, jsonify
from pydantic import Field

from vault import db
from vault.accounts import services as accounts
from vault.accounts.models import Role, User
from vault.api import (
    B64,
    Body,
    Out,
    Query,
    Timestamp,
    b64_max,
    endpoint,
    me,
    ok,
    parse_body,
    parse_query,
)
from vault.figures import services
from vault.figures.models import MAX_RECORD_BYTES, Outcome
from vault.keyring import keyring
from vault.protocol.encoding import b64encode
from vault.sessions import require_recent_sign_in

bp = Blueprint("figures", __name__, url_prefix="/api/v1")

ADMIN = {Role.ADMIN}
PERIOD = Field(min_length=7, max_length=7, description='a calendar quarter, "YYYY-Qn"')


class FieldOut(Out):
    """One outcome field and its values, in the order randomized response uses."""

    name: str
    values: list[str]


class SchemaReply(Out):
    """What a report must carry this period."""

    period: str
    epsilon: float
    fields: list[FieldOut]


class OutcomeBody(Body):
    """Randomized answers and the true ones sealed to the case's members (§28.3)."""

    period: str = PERIOD
    epsilon: float
    answers: dict[str, str] = Field(max_length=16)
    record: b64_max(MAX_RECORD_BYTES)  # type: ignore[valid-type]


class OutcomeOut(Out):
    """A stored report, without its answers."""

    case_id: str
    period: str
    submitted_at: Timestamp
    submitted_by: str | None


class OutcomeReply(Out):
    """The report as stored."""

    outcome: OutcomeOut


class CaseOutcomeOut(Out):
    """A report as the case's members see it: the sealed record to open."""

    period: str
    submitted_at: Timestamp
    submitted_by: str | None
    record: B64


class CaseOutcomesReply(Out):
    """A case's reports, newest first."""

    outcomes: list[CaseOutcomeOut]


class CategoryOut(Out):
    """One value's estimated count among the reports and its interval."""

    value: str
    estimate: float
    interval: list[float]


class FigureOut(Out):
    """A central figure (value, interval) or a local one (reports, categories)."""

    name: str
    kind: Literal["central", "local"]
    mechanism: Literal["discrete_laplace", "randomized_response"]
    epsilon: float
    suppressed: bool
    bound: int | None = None
    scale: float | None = None
    value: int | None = None
    interval: list[float] | None = None
    reports: int | None = None
    categories: list[CategoryOut] | None = None


class ReleaseOut(Out):
    """One release of a period's figures."""

    id: str
    period: str
    created_at: Timestamp
    epsilon: float
    confidence: float
    figures: list[FigureOut]


class ReleaseReply(Out):
    """The new release."""

    release: ReleaseOut


class BudgetOut(Out):
    """A period's privacy budget."""

    epsilon_total: float
    epsilon_spent: float
    epsilon_left: float


class ReleasesReply(Out):
    """A period's budget and releases, newest first."""

    period: str
    budget: BudgetOut
    releases: list[ReleaseOut]


class PeriodQuery(Query):
    """Which period (the current one when absent)."""

    period: str | None = Field(None, description='a calendar quarter, "YYYY-Qn"')


class ReleaseBody(Body):
    """The period to release."""

    period: str = PERIOD


def _settings() -> services.Settings:
    return services.settings_from(current_app.config)


def _when(outcome: Outcome) -> str:
    return outcome.submitted_at.isoformat().replace("+00:00", "Z")


def _name(user: User | None) -> str | None:
    return None if user is None else accounts.display_name(keyring(), user)


@bp.get("/figures/outcomes/schema")
@endpoint(
    "The outcome fields, period and epsilon a report uses",
    roles={Role.COUNSEL, Role.ADMIN},
    replies=ok(SchemaReply),
)
def outcome_schema() -> Response:
    """Fields with their values in order, the current period and epsilon."""
    return jsonify(services.schema(_settings()))


@bp.post("/cases/<case_id>/outcomes")
@endpoint(
    "Report a case's outcomes for the period: randomized answers and a sealed record",
    roles={Role.COUNSEL},
    body=OutcomeBody,
    replies=ok(OutcomeReply, 201),
)
def report_outcome(case_id: str) -> tuple[Response, int]:
    """Counsel of the case only; once per case and period."""
    user = me()
    case = services.counsel_case(db.session(), user, case_id)
    body = parse_body(OutcomeBody)
    outcome = services.report_outcome(
        db.session(),
        user,
        case,
        _settings(),
        period=body.period,
        epsilon=body.epsilon,
        answers=body.answers,
        record=body.record,
    )
    out = {
        "case_id": outcome.case_id,
        "period": outcome.period,
        "submitted_at": _when(outcome),
        "submitted_by": _name(user),
    }
    return jsonify({"outcome": out}), 201


@bp.get("/cases/<case_id>/outcomes")
@endpoint(
    "A case's outcome reports with their sealed records",
    roles={Role.COUNSEL, Role.SURVIVOR},
    replies=ok(CaseOutcomesReply),
)
def case_outcomes(case_id: str) -> Response:
    """Members of the case only, newest first."""
    rows = services.list_outcomes(db.session(), me(), case_id)
    outcomes: list[dict[str, Any]] = [
        {
            "period": o.period,
            "submitted_at": _when(o),
            "submitted_by": _name(u),
            "record": b64encode(o.record),
        }
        for o, u in rows
    ]
    return jsonify({"outcomes": outcomes})


@bp.get("/admin/figures/releases")
@endpoint(
    "A period's privacy budget and released figures (reading spends nothing)",
    roles=ADMIN,
    replies=ok(ReleasesReply),
    query=PeriodQuery,
)
def list_releases() -> Response:
    """Stored releases, newest first."""
    period = parse_query(PeriodQuery).period or services.current_period()
    budget, made = services.releases(db.session(), period, _settings())
    return jsonify(
        {
            "period": period,
            "budget": services.budget_json(budget),
            "releases": [services.release_json(r) for r in made],
        }
    )


@bp.post("/admin/figures/releases")
@endpoint(
    "Release a period's figures with differential privacy, spending its budget",
    roles=ADMIN,
    body=ReleaseBody,
    replies=ok(ReleaseReply, 201),
)
def create_release() -> tuple[Response, int]:
    """Recent sign-in; 409 budget_exhausted when the period cannot afford it."""
    require_recent_sign_in()
    body = parse_body(ReleaseBody)
    made = services.release(db.session(), body.period, _settings(), me().id)
    return jsonify({"release": services.release_json(made)}), 201
