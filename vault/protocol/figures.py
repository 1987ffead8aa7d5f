"""Outcome reporting (protocol §28): the fixed fields, reporting periods, k-ary randomized
response probabilities, and the estimator the server applies to randomized counts.

Pure: no Flask, no database. The Python client draws the randomized answers through
OpenDP (vault/client/figures.py); the server releases figures (vault/figures/).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist

PLAINTEXT_KIND = "haven.outcome.v1"
CONVERSATION_PREFIX = "outcome"

FIELDS: dict[str, tuple[str, ...]] = {
    "t_visa": ("none", "preparing", "filed", "granted", "denied"),
    "u_visa": ("none", "preparing", "filed", "granted", "denied"),
    "protective_order": ("not_sought", "sought", "obtained", "denied"),
    "referral": ("none", "shelter", "medical", "mental_health", "law_enforcement", "other"),
    "language": ("ar", "en", "es", "fr", "ht", "pt", "ru", "th", "tl", "vi", "zh", "other"),
}

_PERIOD = re.compile(r"^([0-9]{4})-Q([1-4])\Z")


class OutcomeError(ValueError):
    """Answers or a period that break the fixed schema."""


def period_of(moment: datetime) -> str:
    """The calendar quarter (UTC) holding ``moment``, as "YYYY-Qn"."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-Q{(utc.month - 1) // 3 + 1}"


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """The first instant of a period and the first instant after it (UTC)."""
    found = _PERIOD.match(period)
    if found is None:
        raise OutcomeError("a period is written YYYY-Qn, n from 1 to 4")
    year, quarter = int(found.group(1)), int(found.group(2))
    if not 2000 <= year <= 9998:
        raise OutcomeError("a period's year is from 2000 to 9998")
    start = datetime(year, 3 * quarter - 2, 1, tzinfo=UTC)
    end = (
        datetime(year + 1, 1, 1, tzinfo=UTC)
        if quarter == 4
        else datetime(year, 3 * quarter + 1, 1, tzinfo=UTC)
    )
    return start, end


def check_answers(answers: Mapping[str, object]) -> dict[str, str]:
    """Exactly the fixed fields, each with one of its listed values."""
    if set(answers) != set(FIELDS):
        missing = sorted(set(FIELDS) - set(answers))
        extra = sorted(set(answers) - set(FIELDS))
        raise OutcomeError(
            f"answers must name every field once (missing {missing}, unknown {extra})"
        )
    for name, value in answers.items():
        if not isinstance(value, str) or value not in FIELDS[name]:
            raise OutcomeError(f"{name}: not one of {', '.join(FIELDS[name])}")
    return {name: str(answers[name]) for name in FIELDS}


def keep_probability(epsilon: float, k: int) -> float:
    """p = e^eps / (e^eps + k - 1): the chance the true value is reported."""
    return math.exp(epsilon) / (math.exp(epsilon) + k - 1)


def other_probability(epsilon: float, k: int) -> float:
    """q = (1 - p) / (k - 1): the chance of each one other value."""
    return (1 - keep_probability(epsilon, k)) / (k - 1)


def conversation_id(case_id: str, period: str) -> str:
    """The conversation id of the sealed record's header: "outcome:<case>:<period>"."""
    return f"{CONVERSATION_PREFIX}:{case_id}:{period}"


def plaintext(period: str, answers: Mapping[str, str]) -> str:
    """The sealed record's text: compact UTF-8 JSON, keys sorted."""
    body = {"kind": PLAINTEXT_KIND, "period": period, "answers": dict(answers)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def parse_plaintext(text: str) -> tuple[str, dict[str, str]]:
    """The period and true answers of an opened record; OutcomeError if it is not one."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise OutcomeError("the record is not JSON") from exc
    if not isinstance(body, dict) or body.get("kind") != PLAINTEXT_KIND:
        raise OutcomeError("the record is not an outcome record")
    period = body.get("period")
    answers = body.get("answers")
    if not isinstance(period, str) or not isinstance(answers, dict):
        raise OutcomeError("the record has no period or answers")
    period_bounds(period)
    return period, check_answers(answers)


@dataclass(frozen=True)
class Estimate:
    """The estimated count of one value among n randomized reports, and its interval."""

    value: str
    estimate: float
    interval: tuple[float, float]


def estimate(count: int, n: int, epsilon: float, k: int, confidence: float) -> tuple[float, float]:
    """(c - n q) / (p - q) and the half-width of its normal interval at ``confidence``.

    Var = (n q (1 - q) + t (1 - p - q)(p - q)) / (p - q)^2, the exact variance of the
    randomized count given t true holders of the value, with t the estimate clamped to [0, n].
    """
    p, q = keep_probability(epsilon, k), other_probability(epsilon, k)
    raw = (count - n * q) / (p - q)
    held = min(max(raw, 0.0), float(n))
    variance = (n * q * (1 - q) + held * (1 - p - q) * (p - q)) / (p - q) ** 2
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return raw, z * math.sqrt(max(variance, 0.0))


def estimate_field(
    name: str, counts: Mapping[str, int], n: int, epsilon: float, confidence: float
) -> list[Estimate]:
    """Every value's estimate for one field, in the field's listed order."""
    values = FIELDS[name]
    out = []
    for value in values:
        raw, half = estimate(counts.get(value, 0), n, epsilon, len(values), confidence)
        out.append(Estimate(value, raw, (raw - half, raw + half)))
    return out
