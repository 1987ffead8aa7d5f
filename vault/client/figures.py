"""Outcome reporting for the Python client (protocol §28).

Counsel's answers are randomized here, through OpenDP's randomized response, before they
leave the machine; the true answers travel only inside a message envelope sealed to the
case's members. Admins read and make releases of the period's figures.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import opendp.prelude as dp

from vault.client.api import HavenClient, parse_public_keys
from vault.protocol import figures as pfig
from vault.protocol import messages as pmsg
from vault.protocol.encoding import b64decode, b64encode
from vault.protocol.keys import ProtocolError, PublicKeys

dp.enable_features("contrib")


def randomize(answers: Mapping[str, str], epsilon: float) -> dict[str, str]:
    """k-ary randomized response on every field, each an epsilon-DP OpenDP measurement."""
    checked = pfig.check_answers(answers)
    out: dict[str, str] = {}
    for name, values in pfig.FIELDS.items():
        measurement = _randomizer(tuple(values), pfig.keep_probability(epsilon, len(values)))
        out[name] = str(measurement(checked[name]))
    return out


@functools.cache
def _randomizer(values: tuple[str, ...], prob: float) -> dp.Measurement:
    """A field's randomized response, built once: building costs more than each use."""
    return dp.m.make_randomized_response(categories=list(values), prob=prob)


@dataclass(frozen=True)
class OpenedOutcome:
    """A case's report with its true answers opened and verified."""

    period: str
    submitted_at: str
    submitted_by: str | None
    answers: dict[str, str]


class Figures:
    """Outcome reports and figures over a signed-in HavenClient."""

    def __init__(self, client: HavenClient) -> None:
        self.client = client

    def schema(self) -> dict[str, Any]:
        """The fields, period and epsilon reports use now."""
        return cast(dict[str, Any], self.client.get("/figures/outcomes/schema"))

    def _members(self, case_id: str) -> dict[str, PublicKeys]:
        """The case's members' keys, each checked against the key log and pinned."""
        case = self.client.get(f"/cases/{case_id}")["case"]
        me = self.client.account
        assert me is not None
        keys: dict[str, PublicKeys] = {}
        for member in case["members"]:
            if member["user_id"] == me.id:
                keys[me.id] = me.public_keys
                continue
            self.client.trust_contact(member["user_id"], member["username"], member["public_keys"])
            keys[member["user_id"]] = parse_public_keys(member["public_keys"])
        return keys

    def seal_record(self, case_id: str, period: str, answers: Mapping[str, str]) -> bytes:
        """The true answers as a message envelope for the case's members (§28.3)."""
        me = self.client.account
        assert me is not None
        members = self._members(case_id)
        recipients = tuple(
            sorted(
                (pmsg.Recipient(uid, key.version) for uid, key in members.items()),
                key=lambda r: r.user_id.encode("utf-8"),
            )
        )
        header = pmsg.Header(
            conversation_id=pfig.conversation_id(case_id, period),
            message_id=pmsg.new_message_id(),
            sender_id=me.id,
            sender_key_version=me.keys.version,
            sent_at=time.time_ns() // 1_000_000,
            ttl=0,
            recipients=recipients,
        )
        x25519 = {uid: key.x25519 for uid, key in members.items()}
        envelope = pmsg.compose(header, pfig.plaintext(period, answers), me.keys, x25519)
        return pmsg.json_bytes(envelope)

    def report(self, case_id: str, answers: Mapping[str, str]) -> dict[str, Any]:
        """Randomize the answers, seal the true ones, and report them for this period."""
        schema = self.schema()
        period, epsilon = str(schema["period"]), float(schema["epsilon"])
        checked = pfig.check_answers(answers)
        body = {
            "period": period,
            "epsilon": epsilon,
            "answers": randomize(checked, epsilon),
            "record": b64encode(self.seal_record(case_id, period, checked)),
        }
        return cast(dict[str, Any], self.client.post(f"/cases/{case_id}/outcomes", body))

    def outcomes(self, case_id: str) -> list[OpenedOutcome]:
        """The case's reports with their true answers, each verified before it is shown."""
        me = self.client.account
        assert me is not None
        members = self._members(case_id)
        opened = []
        for item in self.client.get(f"/cases/{case_id}/outcomes")["outcomes"]:
            envelope = pmsg.parse_record(b64decode(item["record"]))
            header = envelope.header
            if header.conversation_id != pfig.conversation_id(case_id, item["period"]):
                raise ProtocolError("this record belongs to another case or period")
            sender = members.get(header.sender_id)
            if sender is None or sender.version != header.sender_key_version:
                raise ProtocolError("the record's author is not a member with that key")
            text = pmsg.open_envelope(envelope, me.id, me.keys, sender)
            period, answers = pfig.parse_plaintext(text)
            if period != item["period"]:
                raise ProtocolError("the record names another period")
            opened.append(
                OpenedOutcome(period, item["submitted_at"], item["submitted_by"], answers)
            )
        return opened

    def releases(self, period: str | None = None) -> dict[str, Any]:
        """A period's budget and releases (admins)."""
        params = {} if period is None else {"period": period}
        return cast(dict[str, Any], self.client.get("/admin/figures/releases", **params))

    def release(self, period: str) -> dict[str, Any]:
        """Release a period's figures (admins, after a recent sign-in)."""
        answer = self.client.post("/admin/figures/releases", {"period": period})
        return cast(dict[str, Any], answer["release"])
