"""Witness settings on the server and witness policies on the client fail loudly (§15)."""

from __future__ import annotations

import json

import click
import pytest

from tests.vectors import generate
from vault.client import WitnessPolicy
from vault.client.cli import witness_policy
from vault.config import ConfigError, load_config

VECTORS = json.loads((generate.HERE / "checkpoint.json").read_text())
W1, W2, W3 = (w["vkey"] for w in VECTORS["witnesses"])
LOG_VKEY = VECTORS["log"]["vkey"]


def test_no_witness_is_a_working_default() -> None:
    config = load_config({"HAVEN_PUBLIC_URL": "https://haven.example.org"})
    assert config["HAVEN_WITNESSES"] == () and config["HAVEN_WITNESS_QUORUM"] == 0
    assert config["HAVEN_LOG_ORIGIN"] == "haven.example.org/key-log"


def test_witnesses_are_parsed() -> None:
    config = load_config(
        {"HAVEN_WITNESSES": f"{W1} https://w1.example/;\n{W2} http://10.0.0.2:7380; {W3} http://w3"}
    )
    assert [url for _, url in config["HAVEN_WITNESSES"]] == [
        "https://w1.example",
        "http://10.0.0.2:7380",
        "http://w3",
    ]
    assert config["HAVEN_WITNESS_QUORUM"] == 1


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HAVEN_WITNESSES": W1}, "HAVEN_WITNESSES"),
        ({"HAVEN_WITNESSES": f"{LOG_VKEY} https://w"}, "HAVEN_WITNESSES"),
        ({"HAVEN_WITNESSES": f"{W1} ftp://w"}, "HAVEN_WITNESSES"),
        ({"HAVEN_WITNESSES": f"{W1} https://a; {W1} https://b"}, "HAVEN_WITNESSES"),
        ({"HAVEN_WITNESSES": f"{W1[:-2]}AA https://w"}, "HAVEN_WITNESSES"),
        ({"HAVEN_WITNESSES": f"{W1} https://w", "HAVEN_WITNESS_QUORUM": "2"}, "QUORUM"),
        ({"HAVEN_WITNESSES": f"{W1} https://w", "HAVEN_WITNESS_QUORUM": "0"}, "QUORUM"),
        ({"HAVEN_LOG_ORIGIN": "a log"}, "HAVEN_LOG_ORIGIN"),
    ],
)
def test_bad_witness_settings_stop_the_start(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(env)


def test_a_client_policy_cannot_be_empty_by_accident() -> None:
    with pytest.raises(ValueError, match="unwitnessed"):
        WitnessPolicy.of([], 1)
    with pytest.raises(ValueError, match="quorum"):
        WitnessPolicy.of([W1], 2)
    with pytest.raises(ValueError, match="cosignature"):
        WitnessPolicy.of([LOG_VKEY], 1)
    assert WitnessPolicy.of([W1, W2], 2).is_witnessed
    assert not WitnessPolicy.unwitnessed().is_witnessed


def test_the_cli_needs_witness_keys_or_an_explicit_opt_out() -> None:
    with pytest.raises(click.ClickException, match="HAVEN_WITNESS_KEYS"):
        witness_policy({})
    assert not witness_policy({"HAVEN_UNWITNESSED": "true"}).is_witnessed
    policy = witness_policy({"HAVEN_WITNESS_KEYS": f"{W1} {W2}", "HAVEN_WITNESS_QUORUM": "2"})
    assert policy.quorum == 2 and len(policy.keys) == 2
