"""Which failures the Python client's upload and send loops wait out (protocol §10.3)."""

from __future__ import annotations

import pytest
import requests

from vault.client.api import ApiError, closed_before_answer, wait_to_retry


@pytest.mark.parametrize(
    ("status", "code"),
    [(503, "database_unavailable"), (502, "http_error"), (429, "too_many_pending_bodies")],
)
def test_busy_answers_are_waited_out(status: int, code: str) -> None:
    assert wait_to_retry(ApiError(status, code, "busy"), 0, 3, 0.0) == 1


@pytest.mark.parametrize(
    ("status", "code"), [(429, "rate_limited"), (507, "storage_full"), (400, "invalid_field")]
)
def test_other_answers_are_not(status: int, code: str) -> None:
    error = ApiError(status, code, "no")
    with pytest.raises(ApiError):
        wait_to_retry(error, 0, 3, 0.0)


def test_tries_are_bounded() -> None:
    with pytest.raises(ApiError):
        wait_to_retry(ApiError(503, "unavailable", "down"), 3, 3, 0.0)


def test_a_timeout_is_not_a_connection_closed_before_any_answer() -> None:
    assert not closed_before_answer(requests.ReadTimeout("slow"))
    assert not closed_before_answer(requests.ConnectionError("refused"))
    closed = requests.ConnectionError(ConnectionResetError(104, "reset"))
    assert closed_before_answer(closed)
