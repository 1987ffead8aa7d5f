"""Authorization cases of split recovery (protocol §22): the survivor's own split, the
holder's share, and the anonymous steps of a recovery that prove the new passphrase."""

from __future__ import annotations

import os
from datetime import timedelta

from flask import Flask

from tests.authz import Route, World, everyone, signed_in
from tests.factories import CHEAP
from vault.accounts import shares
from vault.db import database
from vault.protocol import shares as pshares
from vault.protocol.encoding import b64encode

NOT_SURVIVOR = {"counsel": 403, "admin": 403, "stranger_counsel": 403}
SETUP_ID = bytes(range(16))
# Well-formed, but no commitment of any setup: the holder gets share_invalid, others 404.
RELEASE = {
    "setup_id": b64encode(SETUP_ID),
    "slot": 2,
    "commitment": b64encode(bytes(32)),
    "sealed_share": b64encode(bytes(pshares.SEALED_PAYLOAD_BYTES)),
}


def build(app: Flask, world: World) -> None:
    """The survivor splits her key (share 2 sealed to her counsel) and a recovery waits."""
    survivor, counsel = world.people["survivor"], world.people["counsel"]
    parts = pshares.split_secret(os.urandom(32))
    payloads = [pshares.SharePayload(SETUP_ID, slot, parts[slot - 1]) for slot in (2, 3)]
    commitments = [
        pshares.commitment(survivor.username, SETUP_ID, p.slot, p.share) for p in payloads
    ]
    message = pshares.setup_message(survivor.username, SETUP_ID, 1, commitments)
    with app.app_context():
        db = database(app).sessions()
        ring = app.extensions["haven.keyring"]
        shares.set_setup(
            db,
            ring,
            survivor.id,
            shares.NewSetup(
                SETUP_ID,
                1,
                survivor.keys.signing_key.sign(message).signature,
                [
                    shares.HeldShareIn(
                        2, commitments[0], counsel.id, 1, payloads[0].seal(counsel.public.x25519)
                    ),
                    shares.HeldShareIn(3, commitments[1]),
                ],
            ),
        )
        req = shares.start(
            db,
            ring,
            CHEAP,
            survivor.username,
            os.urandom(32),
            os.urandom(32),
            timedelta(hours=72),
        )
        world.extra["share_request"] = req.id
        db.close()


ROUTES = [
    Route("GET", "/api/v1/account/recovery-shares", signed_in(200)),
    Route("POST", "/api/v1/account/recovery-shares", signed_in(400, **NOT_SURVIVOR), body={}),
    Route(
        "DELETE",
        "/api/v1/account/recovery-shares",
        signed_in(204, stranger_survivor=404, **NOT_SURVIVOR),
    ),
    Route(
        "POST",
        "/api/v1/account/recovery-shares/cancel",
        signed_in(200, stranger_survivor=404, **NOT_SURVIVOR),
    ),
    Route("GET", "/api/v1/recovery-shares/held", signed_in(200)),
    Route("POST", "/api/v1/recovery-shares/held/reseal", signed_in(400), body={}),
    Route(
        "POST",
        "/api/v1/recovery-shares/requests/<request_id>/release",
        signed_in(404, counsel=400),
        path=lambda w: f"/api/v1/recovery-shares/requests/{w.extra['share_request']}/release",
        body=RELEASE,
    ),
    Route("POST", "/api/v1/auth/share-recovery/start", everyone(400), body={}),
    Route("POST", "/api/v1/auth/share-recovery/status", everyone(400), body={}),
    Route("POST", "/api/v1/auth/share-recovery/share", everyone(400), body={}),
]
