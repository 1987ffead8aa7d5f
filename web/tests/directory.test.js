/** A contact's key history (§12.5 step 4): a contact who replaced their keys after the
 * record in hand was read is not a log violation; a history that does not hold both is. */

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { b64encode } from "../src/crypto/encoding.js";
import * as KT from "../src/crypto/transparency.js";
import { forgetVerified, setReader, verifyContactHistory } from "../src/directory.js";

const USER = "contact-1";
const keys = (n) => ({ x25519: new Uint8Array(32).fill(n), ed25519: new Uint8Array(32).fill(n + 100), signature: new Uint8Array(64).fill(n + 50) });
const entry = (version, n = version, kind = "publish") => KT.encodeEntry({ kind, userId: USER, version, ...keys(n), timestampMs: 1795000000000 + version });
const published = (version, n = version) => {
  const k = keys(n);
  return { version, x25519: b64encode(k.x25519), ed25519: b64encode(k.ed25519), signature: b64encode(k.signature) };
};
const held = (version, n = version) => ({ version, ...keys(n) });
const answer = (currentVersion, entries, records) => ({
  user_id: USER,
  current_version: currentVersion,
  keys: records,
  entries: entries.map((data, index) => ({ index, data: b64encode(data) })),
});

function serve(body) {
  const asked = [];
  setReader(async (path) => {
    asked.push(path);
    return body;
  });
  return asked;
}

afterEach(() => {
  setReader(null);
  forgetVerified();
});

test("the record in hand is the newest: checked, nothing newer returned", async () => {
  serve(answer(2, [entry(1), entry(2)], [published(1), published(2)]));
  assert.equal(await verifyContactHistory(USER, held(2)), null);
});

test("the contact replaced their keys after the record was read: the newer record comes back", async () => {
  const asked = serve(answer(2, [entry(1), entry(2), entry(1, 1, "supersede")], [published(1), published(2)]));
  assert.deepEqual(await verifyContactHistory(USER, held(1)), published(2));
  assert.deepEqual(asked, [`/users/${USER}/keys`]);
});

test("a newer version whose keys the log does not hold is refused", async () => {
  serve(answer(2, [entry(1), entry(2)], [published(1), published(2, 7)]));
  await assert.rejects(verifyContactHistory(USER, held(1)), KT.EquivocationError);
});

test("the record in hand that is not its version's publish is refused, newer keys or not", async () => {
  serve(answer(2, [entry(1), entry(2)], [published(1), published(2)]));
  await assert.rejects(verifyContactHistory(USER, held(1, 9)), KT.EquivocationError);
});

test("a newer version in the log that the server does not name is still refused", async () => {
  serve(answer(1, [entry(1), entry(2)], [published(1), published(2)]));
  await assert.rejects(verifyContactHistory(USER, held(1)), /newer than the one shown/);
});
