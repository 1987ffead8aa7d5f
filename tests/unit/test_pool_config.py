"""The database pool is sized from settings (docs/deploy.md, "Connection pool sizing")."""

from __future__ import annotations

import pytest

from vault.config import ConfigError, load_config
from vault.db import make_engine


def test_pool_defaults_and_settings_reach_the_engine() -> None:
    config = load_config({})
    assert (config["HAVEN_DB_POOL_SIZE"], config["HAVEN_DB_MAX_OVERFLOW"]) == (10, 20)
    config = load_config({"HAVEN_DB_POOL_SIZE": "4", "HAVEN_DB_MAX_OVERFLOW": "0"})
    engine = make_engine(
        "postgresql+psycopg://u@127.0.0.1:1/d",
        config["HAVEN_DB_POOL_SIZE"],
        config["HAVEN_DB_MAX_OVERFLOW"],
    )
    assert (engine.pool.size(), engine.pool._max_overflow) == (4, 0)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HAVEN_DB_POOL_SIZE", "0"),
        ("HAVEN_DB_POOL_SIZE", "ten"),
        ("HAVEN_DB_MAX_OVERFLOW", "-1"),
    ],
)
def test_a_bad_pool_setting_fails_loudly(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_config({name: value})
