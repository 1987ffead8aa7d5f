/** Page-side helpers that need no browser: invite fragments, error messages. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { b64encode } from "../src/crypto/encoding.js";
import { parseInviteFragment } from "../src/session.js";

test("invite fragments: a canonical 32-byte token only", () => {
  const token = b64encode(new Uint8Array(32).fill(9));
  assert.equal(parseInviteFragment(`#invite=${token}`), token);
  assert.equal(parseInviteFragment(""), null);
  assert.equal(parseInviteFragment("#invite="), null);
  assert.equal(parseInviteFragment(`#invite=${token}=`), null);
  assert.equal(parseInviteFragment(`#invite=${token.slice(1)}`), null);
  assert.equal(parseInviteFragment(`#invite=${b64encode(new Uint8Array(31))}`), null);
  assert.equal(parseInviteFragment(`#other=${token}`), null);
  assert.equal(parseInviteFragment(`#invite=${token}&x=1`), null);
});
