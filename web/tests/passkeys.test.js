/** The PRF way in (§21.9): every value of tests/vectors/passkeys.json, byte for byte. */

import assert from "node:assert/strict";
import { before, test } from "node:test";
import { b64decode, b64encode } from "../src/crypto/encoding.js";
import { keyPairsFrom, unwrapBundle, wrapBundle } from "../src/crypto/keys.js";
import { PRF_INPUT, credentialJson, prfWrapKey } from "../src/crypto/passkeys.js";
import { loadSodium, vectors } from "./helpers.js";

const v = vectors("passkeys");
let sodium;

before(async () => {
  sodium = await loadSodium();
});

test("the PRF input and the wrap key it leads to", () => {
  assert.equal(b64encode(PRF_INPUT), v.prf_input);
  assert.equal(b64encode(prfWrapKey(sodium, b64decode(v.prf_output))), v.wrap_key);
});

test("the bundle wrapped under the PRF key, and opened with it", () => {
  const wrapKey = b64decode(v.wrap_key);
  const keys = keyPairsFrom(sodium, v.key_version, b64decode(v.x25519_secret), b64decode(v.ed25519_seed));
  assert.equal(b64encode(wrapBundle(sodium, keys, v.username, wrapKey, b64decode(v.nonce))), v.wrapped_keys);
  const opened = unwrapBundle(sodium, b64decode(v.wrapped_keys), v.username, v.key_version, wrapKey);
  assert.equal(b64encode(opened.x25519Secret), v.x25519_secret);
  assert.equal(b64encode(opened.ed25519Seed), v.ed25519_seed);
});

test("an answer is sent as toJSON() would, never with the PRF output", () => {
  const buf = (...b) => new Uint8Array(b).buffer;
  const prf = { enabled: true, results: { first: buf(9, 9, 9) } };
  const base = { id: "AQI", rawId: buf(1, 2), type: "public-key", authenticatorAttachment: "platform", getClientExtensionResults: () => ({ prf }) };
  const created = credentialJson({ ...base, response: { clientDataJSON: buf(3), attestationObject: buf(4, 5), getTransports: () => ["internal"] } });
  assert.deepEqual(created, {
    id: "AQI",
    rawId: "AQI",
    type: "public-key",
    response: { clientDataJSON: "Aw", attestationObject: "BAU", transports: ["internal"] },
    clientExtensionResults: {},
    authenticatorAttachment: "platform",
  });
  const answer = credentialJson({ ...base, response: { clientDataJSON: buf(3), authenticatorData: buf(6), signature: buf(7), userHandle: buf(8) } });
  assert.deepEqual(answer.response, { clientDataJSON: "Aw", authenticatorData: "Bg", signature: "Bw", userHandle: "CA" });
  assert.deepEqual(answer.clientExtensionResults, {});
});
