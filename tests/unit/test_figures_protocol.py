"""Outcome reporting's pure pieces (protocol §28): periods, probabilities, the estimator's
vector as the spec prints it, and OpenDP's randomized response at the spec's p."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from vault.client.figures import randomize
from vault.protocol import figures as pfig


@pytest.mark.parametrize(
    ("moment", "period", "start", "end"),
    [
        (datetime(2026, 11, 30, 17, 0, tzinfo=UTC), "2026-Q4", (2026, 10), (2027, 1)),
        (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), "2026-Q1", (2026, 1), (2026, 4)),
        (datetime(2026, 6, 30, 23, 59, tzinfo=UTC), "2026-Q2", (2026, 4), (2026, 7)),
    ],
)
def test_periods_are_utc_quarters(
    moment: datetime, period: str, start: tuple[int, int], end: tuple[int, int]
) -> None:
    assert pfig.period_of(moment) == period
    assert pfig.period_bounds(period) == (
        datetime(*start, 1, tzinfo=UTC),
        datetime(*end, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize("bad", ["2026-Q5", "2026-Q0", "26-Q1", "2026-q1", "2026-Q1\n", "1999-Q4"])
def test_malformed_periods_are_refused(bad: str) -> None:
    with pytest.raises(pfig.OutcomeError):
        pfig.period_bounds(bad)


def test_probabilities_match_the_spec_table() -> None:
    table = {5: (0.404610, 1737785322), 4: (0.475367, 2041685230), 6: (0.352187, 1512633486)}
    table[12] = (0.198150, 851049110)
    for k, (p, threshold) in table.items():
        assert pfig.keep_probability(1.0, k) == pytest.approx(p, abs=1e-6)
        assert math.floor(pfig.keep_probability(1.0, k) * 2**32) == threshold
        ratio = pfig.keep_probability(1.0, k) / pfig.other_probability(1.0, k)
        assert ratio == pytest.approx(math.e)


def test_estimates_match_the_spec_vector() -> None:
    counts = {"none": 100, "preparing": 40, "filed": 60, "granted": 25, "denied": 15}
    expected = {
        "none": (251.3139, 193.0451, 309.5828),
        "preparing": (16.7209, -26.8422, 60.2841),
        "filed": (94.9186, 45.7026, 144.1346),
        "granted": (-41.9273, -84.1837, 0.3290),
        "denied": (-81.0262, -123.2825, -38.7698),
    }
    got = pfig.estimate_field("t_visa", counts, 240, 1.0, 0.95)
    assert [e.value for e in got] == list(pfig.FIELDS["t_visa"])
    for e in got:
        assert (e.estimate, *e.interval) == pytest.approx(expected[e.value], abs=1e-4)
    assert sum(e.estimate for e in got) == pytest.approx(240)


def test_answers_must_name_every_field_with_a_listed_value() -> None:
    good = {name: values[0] for name, values in pfig.FIELDS.items()}
    assert pfig.check_answers(good) == good
    for bad in ({**good, "t_visa": "approved"}, {**good, "extra": "x"}, {"t_visa": "none"}):
        with pytest.raises(pfig.OutcomeError):
            pfig.check_answers(bad)


def test_plaintext_round_trips_and_randomize_keeps_values_in_their_field() -> None:
    answers = {name: values[-1] for name, values in pfig.FIELDS.items()}
    text = pfig.plaintext("2026-Q4", answers)
    assert text.startswith('{"answers":{') and '"kind":"haven.outcome.v1"' in text
    assert pfig.parse_plaintext(text) == ("2026-Q4", answers)
    for _ in range(20):
        sent = randomize(answers, 1.0)
        assert all(sent[name] in values for name, values in pfig.FIELDS.items())
