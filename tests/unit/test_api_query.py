"""parse_query: a route's declared query parameters parsed into its Query model."""

from __future__ import annotations

import pytest
from flask import Flask
from pydantic import Field

from vault.api import Query, parse_query
from vault.errors import InvalidRequest


class PageQuery(Query):
    """A page of a list."""

    period: str | None = None
    limit: int = Field(50, ge=1, le=200)


@pytest.mark.parametrize(
    ("url", "period", "limit"),
    [("/", None, 50), ("/?period=2026-Q4&limit=7", "2026-Q4", 7), ("/?limit=9&other=1", None, 9)],
)
def test_declared_parameters_are_parsed_and_others_ignored(
    url: str, period: str | None, limit: int
) -> None:
    with Flask(__name__).test_request_context(url):
        parsed = parse_query(PageQuery)
    assert (parsed.period, parsed.limit) == (period, limit)


@pytest.mark.parametrize("url", ["/?limit=many", "/?limit=0", "/?limit=201"])
def test_a_bad_parameter_is_a_400_that_names_it(url: str) -> None:
    with Flask(__name__).test_request_context(url), pytest.raises(InvalidRequest) as caught:
        parse_query(PageQuery)
    assert caught.value.status == 400 and caught.value.code == "invalid_request"
    assert "'limit'" in str(caught.value)
