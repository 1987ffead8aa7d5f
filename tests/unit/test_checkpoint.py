"""Witnessed checkpoints (§15): the committed vectors, and the parsers' refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.vectors import generate
from vault.protocol import checkpoint as cp
from vault.protocol.encoding import b64decode

VECTORS: dict[str, Any] = json.loads((generate.HERE / "checkpoint.json").read_text())


def _witness_keys(indexes: list[int]) -> list[cp.VerifierKey]:
    return [cp.parse_verifier_key(VECTORS["witnesses"][i]["vkey"]) for i in indexes]


def test_vkeys_key_hashes_and_bodies_match_the_vectors() -> None:
    log = VECTORS["log"]
    key = cp.parse_verifier_key(log["vkey"])
    assert key == cp.log_verifier(VECTORS["origin"], b64decode(log["public_key"]))
    assert key.key_hash.hex() == log["key_hash"]
    body = VECTORS["checkpoint"]
    assert (
        cp.Checkpoint(VECTORS["origin"], body["size"], b64decode(body["root"])).body()
        == body["text"]
    )
    for witness in VECTORS["witnesses"]:
        wkey = cp.parse_verifier_key(witness["vkey"])
        assert wkey.alg == cp.ALG_COSIGNATURE_V1 and wkey.key_hash.hex() == witness["key_hash"]
        assert (
            cp.cosignature_message(body["text"], witness["timestamp"]).decode()
            == (witness["message"])
        )
        sig = cp.parse_signature_line(witness["line"][:-1])
        assert cp.verify_signature(body["text"], sig, wkey) == witness["timestamp"]


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_acceptance_cases(case: dict[str, Any]) -> None:
    log = [cp.parse_verifier_key(VECTORS["log"]["vkey"])]
    witnesses = _witness_keys(case["witnesses"])
    if case["expect"] == "accept":
        checked = cp.verify_cosigned(case["note"], log, witnesses, case["quorum"])
        assert checked.size == VECTORS["checkpoint"]["size"]
    else:
        with pytest.raises(cp.CheckpointError) as caught:
            cp.verify_cosigned(case["note"], log, witnesses, case["quorum"])
        assert caught.value.reason == case["expect"]


@pytest.mark.parametrize(
    "text",
    [
        "origin\n5\n",
        "origin\n05\n" + "A" * 43 + "=\n",
        "origin\n-1\n" + "A" * 43 + "=\n",
        "orig in\n5\n" + "A" * 43 + "=\n",
        "origin\n5\n" + "A" * 43 + "=",
        "origin\n5\n" + "A" * 42 + "==\n",
    ],
)
def test_malformed_bodies_are_refused(text: str) -> None:
    with pytest.raises(cp.CheckpointError):
        cp.parse_body(text)


@pytest.mark.parametrize(
    "vkey",
    [
        "name+00000000+AQ==",
        "name+zz+" + "A" * 44,
        VECTORS["log"]["vkey"].replace("+", "+0", 1),
        VECTORS["log"]["vkey"][:-2] + "AA",
        "a+b",
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(cp.CheckpointError):
        cp.parse_verifier_key(vkey)


def test_quorum_must_be_reachable() -> None:
    log = [cp.parse_verifier_key(VECTORS["log"]["vkey"])]
    for quorum in (0, 3):
        with pytest.raises(cp.CheckpointError, match="quorum"):
            cp.verify_cosigned(VECTORS["note"], log, _witness_keys([0, 1]), quorum)


def test_note_parsing_refuses_control_characters_and_missing_signatures() -> None:
    with pytest.raises(cp.CheckpointError):
        cp.parse_note(VECTORS["checkpoint"]["text"])
    with pytest.raises(cp.CheckpointError):
        cp.parse_note(VECTORS["note"].replace("\n", "\r\n", 1))


def test_a_witness_listed_twice_counts_once() -> None:
    log = [cp.parse_verifier_key(VECTORS["log"]["vkey"])]
    [case] = [c for c in VECTORS["cases"] if c["name"] == "quorum not met"]
    twice = _witness_keys([0, 0])
    with pytest.raises(cp.CheckpointError):
        cp.verify_cosigned(case["note"], log, twice, 2)
