/** Every value of tests/vectors/messages.json, byte for byte, and the refusals of §9. */

import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { b64decode, b64encode, concat } from "../src/crypto/encoding.js";
import { keyPairsFrom, verifyPublicRecord } from "../src/crypto/keys.js";
import * as M from "../src/crypto/messages.js";
import { loadSodium, vectors } from "./helpers.js";

const v = vectors("messages");
let sodium;
before(async () => {
  sodium = await loadSodium();
});

function people() {
  const out = {};
  for (const r of v.recipients) {
    out[r.user_id] = keyPairsFrom(sodium, 1, b64decode(r.x25519_secret), b64decode(r.ed25519_seed));
  }
  return out;
}

function deterministicSeal(message, recipient, esk) {
  const epk = sodium.crypto_scalarmult_base(esk);
  const nonce = sodium.crypto_generichash(24, concat(epk, recipient), null);
  return concat(Uint8Array.of(1), epk, sodium.crypto_box_easy(message, nonce, recipient, esk));
}

describe("message vectors", () => {
  test("the sender's public record self-verifies", () => {
    const s = v.sender;
    const record = verifyPublicRecord(sodium, { version: 1, x25519: s.x25519, ed25519: s.ed25519, signature: s.signature }, s.username);
    const keys = people()[s.user_id];
    assert.equal(b64encode(keys.ed25519Public), s.ed25519);
    assert.equal(b64encode(record.x25519), s.x25519);
    for (const r of v.recipients) assert.equal(b64encode(people()[r.user_id].x25519Public), r.x25519);
  });
  for (const e of v.envelopes) {
    test(`envelope "${e.label}": header, padding, body, sealed keys, signature, JSON`, () => {
      const keys = people();
      const sender = keys[v.sender.user_id];
      const header = M.headerOf(e.envelope);
      assert.equal(b64encode(M.encodeHeader(header)), e.header);
      assert.equal(b64encode(sodium.pad(new TextEncoder().encode(e.text), 256)), e.padded_plaintext);
      const x25519 = Object.fromEntries(Object.entries(keys).map(([id, k]) => [id, k.x25519Public]));
      const made = M.compose(sodium, header, e.text, sender, x25519, {
        messageKey: b64decode(e.message_key),
        nonce: b64decode(e.nonce),
        seal: (key, pub, i) => deterministicSeal(key, pub, b64decode(e.ephemeral_secrets[i])),
      });
      assert.deepEqual(made, e.envelope);
      const sealed = e.envelope.recipients.map((r) => b64decode(r.sealed_key));
      assert.equal(b64encode(M.signedMessage(M.encodeHeader(header), b64decode(e.envelope.body), sealed)), e.signed_message);
      for (const r of v.recipients) {
        const text = M.openEnvelope(sodium, e.envelope, {
          conversationId: e.envelope.conversation_id,
          userId: r.user_id,
          keys: keys[r.user_id],
          senderEd25519: sender.ed25519Public,
        });
        assert.equal(text, e.text);
      }
    });
  }
  test("a text of exactly 256 bytes takes a second block (0x80 then 255 zeros)", () => {
    const e = v.envelopes.find((x) => x.label === "exactly 256 bytes");
    const text = new TextEncoder().encode(e.text);
    assert.equal(text.length, 256);
    const padded = b64decode(e.padded_plaintext);
    assert.equal(padded.length, 512);
    assert.deepEqual(padded.subarray(0, 256), text);
    assert.equal(padded[256], 0x80);
    assert.ok(padded.subarray(257).every((b) => b === 0));
    assert.equal(b64decode(e.envelope.body).length, 1 + 24 + 512 + 16);
  });
  test("refusals: another conversation, timer, recipient set, signer, tampered body", () => {
    const keys = people();
    const sender = keys[v.sender.user_id];
    const e = v.envelopes[0].envelope;
    const me = v.recipients[1].user_id;
    const open = (env, extra = {}) =>
      M.openEnvelope(sodium, env, { conversationId: env.conversation_id, userId: me, keys: keys[me], senderEd25519: sender.ed25519Public, ...extra });
    assert.equal(open(e), v.envelopes[0].text);
    assert.throws(() => open(e, { conversationId: "other" }), /another conversation/);
    assert.throws(() => open({ ...e, ttl: 3600 }), /signature/);
    assert.throws(() => open({ ...e, sent_at: e.sent_at + 1 }), /signature/);
    assert.throws(() => open({ ...e, recipients: e.recipients.slice(0, 2) }));
    assert.throws(() => open({ ...e, recipients: [...e.recipients].reverse() }), /sorted/);
    assert.throws(() => open(e, { senderEd25519: keys[me].ed25519Public }), /signature/);
    const body = b64decode(e.body);
    body[50] ^= 1;
    assert.throws(() => open({ ...e, body: b64encode(body) }), /signature/);
    assert.throws(() => open(e, { userId: "id-nobody" }));
  });
  test("a fresh envelope round-trips and pads to 256-byte blocks", () => {
    const keys = people();
    const sender = keys[v.sender.user_id];
    const ids = M.sortByBytes(Object.keys(keys));
    const header = {
      conversationId: "c1",
      messageId: sodium.randombytes_buf(16),
      senderId: v.sender.user_id,
      senderKeyVersion: 1,
      sentAt: Date.now(),
      ttl: 86400,
      recipients: ids.map((userId) => ({ userId, keyVersion: 1 })),
      attachments: [],
    };
    const x25519 = Object.fromEntries(Object.entries(keys).map(([id, k]) => [id, k.x25519Public]));
    const env = M.compose(sodium, header, "x".repeat(300), sender, x25519);
    assert.equal(b64decode(env.body).length, 41 + 512);
    for (const id of ids) {
      assert.equal(M.openEnvelope(sodium, env, { conversationId: "c1", userId: id, keys: keys[id], senderEd25519: sender.ed25519Public }), "x".repeat(300));
    }
    assert.throws(() => M.encodeHeader({ ...header, ttl: 5 }), /ttl/);
  });
});
