"""The history rule (docs/protocol.md §12.4), for one's own keys and for a contact's:
exactly one publish entry per version 1 … current, in order, decoded from the entry bytes."""

from __future__ import annotations

from typing import Any

import pytest

from vault.client.directory import KeyDirectory, WitnessPolicy
from vault.protocol import keys as pkeys
from vault.protocol import transparency as kt
from vault.protocol.encoding import b64encode

ME = "me-account-id"


class FakeLog:
    """Answers GET /directory/mine with a fixed list of entries."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = [e | {"index": i} for i, e in enumerate(entries)]

    def get(self, path: str, **_: Any) -> dict[str, Any]:
        assert path == "/directory/mine"
        return {"entries": self.entries}


def entry(kind: str, keys: pkeys.KeyPairs, user_id: str = ME) -> dict[str, Any]:
    public = keys.public("maria")
    data = kt.KeyEntry(
        kind, user_id, keys.version, public.x25519, public.ed25519, public.signature, 1
    ).encode()
    return {"kind": kind, "user_id": user_id, "key_version": keys.version, "data": b64encode(data)}


V1, V2, V3 = (pkeys.KeyPairs.generate(version=v) for v in (1, 2, 3))
OTHER_V2 = pkeys.KeyPairs.generate(version=2)


def check(entries: list[dict[str, Any]], mine: pkeys.KeyPairs = V2) -> None:
    directory = KeyDirectory(FakeLog(entries), WitnessPolicy.unwitnessed())  # type: ignore[arg-type]
    directory.monitor_self(ME, mine.public("maria"))


def test_a_rotated_account_with_every_version_once_passes() -> None:
    check([entry("publish", V1), entry("publish", V2), entry("supersede", V1)])
    check([entry("publish", V1)], mine=V1)
    check([entry("publish", V1), entry("compromise", V1), entry("publish", V2)])


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([entry("publish", V2)], id="gap: version 1 missing"),
        pytest.param([entry("publish", V1)], id="current version missing"),
        pytest.param(
            [entry("publish", V1), entry("publish", V2), entry("publish", V2)], id="duplicate"
        ),
        pytest.param(
            [entry("publish", V1), entry("publish", V2), entry("publish", V3)],
            id="a newer version I never made",
        ),
        pytest.param([entry("publish", V1), entry("publish", OTHER_V2)], id="substituted"),
        pytest.param(
            [entry("publish", V1), entry("publish", V2), entry("publish", V3, user_id="other")],
            id="an entry naming another account",
        ),
        pytest.param(
            [entry("publish", V1), entry("supersede", V2), entry("publish", V2)],
            id="superseding a version not yet published",
        ),
        pytest.param(
            [entry("publish", V1), entry("publish", V2) | {"data": "AAAA"}], id="not an entry"
        ),
    ],
)
def test_a_log_holding_keys_i_never_made_is_refused(entries: list[dict[str, Any]]) -> None:
    with pytest.raises(kt.TransparencyError):
        check(entries)


def test_the_leaf_bytes_are_read_not_the_labels_beside_them() -> None:
    # The server's labels say "another account, version 3"; the bytes say my version 2.
    relabelled = entry("publish", V2) | {"user_id": "x", "kind": "supersede", "key_version": 3}
    check([entry("publish", V1), relabelled])


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda b: b + b"\x00", id="trailing byte"),
        pytest.param(lambda b: b[:-1], id="truncated"),
        pytest.param(lambda b: b.replace(b"publish", b"publisX"), id="unknown kind"),
    ],
)
def test_an_entry_that_is_not_canonical_is_refused(mutate: Any) -> None:
    public = V1.public("maria")
    data = kt.KeyEntry("publish", ME, 1, public.x25519, public.ed25519, public.signature, 7)
    assert kt.KeyEntry.decode(data.encode()) == data
    with pytest.raises(kt.TransparencyError):
        kt.KeyEntry.decode(mutate(data.encode()))
