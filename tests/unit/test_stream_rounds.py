"""Stream read rounds (vault/messages/reads.py): a round that fails before it starts takes
no later stream with it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import create_engine

from vault.messages.fanout import Hub
from vault.messages.reads import StreamReader


class Interrupted(Exception):
    """The lead stream ended while it waited for a reader (a timeout, a killed greenlet)."""


class FailsOnce:
    """A reader bound whose first wait is interrupted."""

    def __init__(self) -> None:
        self.inner = threading.BoundedSemaphore(1)
        self.calls = 0

    def __enter__(self) -> None:
        self.calls += 1
        if self.calls == 1:
            raise Interrupted
        self.inner.acquire()

    def __exit__(self, *_: Any) -> None:
        self.inner.release()


def test_a_round_that_failed_before_it_started_is_not_joined_by_later_streams() -> None:
    reader = StreamReader(create_engine("sqlite://"), FailsOnce())  # type: ignore[arg-type]
    hub = Hub()
    with pytest.raises(Interrupted):
        reader.read(hub, "a", 0)
    # The dead round used to stay open: every later read joined it and failed at once.
    assert reader.gathering() == set()
