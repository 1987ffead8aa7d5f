/**
 * User key rotation (§14): file keys and message keys re-sealed to the next key version
 * open with the new keys alone; messages open through their reseal; the own-key
 * monitoring rule; attachment keys for members who cannot read a document yet.
 */

import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { attachmentKeys } from "../src/chat.js";
import * as D from "../src/crypto/documents.js";
import { b64decode, b64encode } from "../src/crypto/encoding.js";
import { generateKeyPairs, keyPairsFrom, keysOfVersion, ProtocolError } from "../src/crypto/keys.js";
import * as M from "../src/crypto/messages.js";
import { ResealFailed, resealCount, resealFileKey, resealMessageKey, resealSet } from "../src/crypto/rotation.js";
import * as KT from "../src/crypto/transparency.js";
import { session } from "../src/session.js";
import { loadSodium, vectors } from "./helpers.js";

const docs = vectors("documents");
const msgs = vectors("messages");
let sodium;
before(async () => {
  sodium = await loadSodium();
});

/** The vectors' reader of the sealed file key (key version 3), the document id and file key. */
function documentVector() {
  const k = docs.sealed_key;
  return {
    reader: keyPairsFrom(sodium, k.reader_key_version, b64decode(k.reader_x25519_secret), new Uint8Array(32)),
    id: b64decode(docs.metadata.document_id),
    fileKey: b64decode(docs.file_key.file_key),
    sealed: b64decode(k.sealed),
  };
}

/** The message vectors' people at key version 1, by user id. */
function people() {
  const out = {};
  for (const r of msgs.recipients) out[r.user_id] = keyPairsFrom(sodium, 1, b64decode(r.x25519_secret), b64decode(r.ed25519_seed));
  return out;
}

const throwsCode = (fn, code) => assert.throws(fn, (error) => error instanceof ProtocolError && error.code === code);

describe("re-sealing to the next key version", () => {
  test("a file key from the vectors opens with the new keys only, and names version v+1", () => {
    const { reader, id, fileKey, sealed } = documentVector();
    const next = generateKeyPairs(sodium, reader.version + 1);
    const resealed = resealFileKey(sodium, sealed, id, reader, next);
    assert.equal(resealed.length, D.SEALED_KEY_BYTES);
    assert.equal(resealed[0], 1);
    assert.equal(D.sealedKeyVersion(resealed), 4);
    assert.deepEqual(D.openFileKey(sodium, resealed, id, next), fileKey);
    // The old keys are no longer needed, and no longer enough.
    throwsCode(() => D.openFileKey(sodium, resealed, id, reader), "other_key_version");
    // With both key sets held, each sealed key opens with the set of the version it names.
    assert.deepEqual(D.openFileKey(sodium, sealed, id, [next, reader]), fileKey);
    assert.deepEqual(D.openFileKey(sodium, resealed, id, [reader, next]), fileKey);
    // A box sealed to another key that claims version 4 does not open.
    const forged = D.sealFileKey(sodium, fileKey, id, generateKeyPairs(sodium, 4).x25519Public, 4);
    assert.throws(() => D.openFileKey(sodium, forged, id, next), /does not open/);
    assert.throws(() => resealFileKey(sodium, sealed, new Uint8Array(16), reader, next), /another document/);
  });

  test("a message key opens with the new keys and decrypts the original body", () => {
    const keys = people();
    const sender = keys[msgs.sender.user_id];
    const e = msgs.envelopes[1];
    const me = msgs.recipients[1].user_id;
    const mine = e.envelope.recipients.find((r) => r.user_id === me);
    const next = generateKeyPairs(sodium, 2);
    const resealed = resealMessageKey(sodium, b64decode(mine.sealed_key), keys[me], next);
    assert.equal(resealed.length, M.SEALED_KEY_BYTES);
    assert.deepEqual(M.openKey(sodium, resealed, next), b64decode(e.message_key));
    assert.throws(() => M.openKey(sodium, resealed, keys[me]), /not sealed to this key/);

    const envelope = { ...e.envelope, reseal: { key_version: 2, sealed_key: b64encode(resealed) } };
    const open = (env, extra = {}) =>
      M.openEnvelope(sodium, env, { conversationId: env.conversation_id, userId: me, keys: next, senderEd25519: sender.ed25519Public, ...extra });
    // Read through the reseal with the new keys alone; the signature is the sender's, unchanged.
    assert.equal(open(envelope), e.text);
    assert.equal(open({ ...e.envelope, reseal: null }, { keys: keys[me] }), e.text);
    assert.equal(open(envelope, { keys: [keys[me], next] }), e.text);
    throwsCode(() => open({ ...e.envelope, reseal: null }), "other_key_version");
    throwsCode(() => open(envelope, { keys: keys[me] }), "other_key_version");
    assert.throws(() => open(envelope, { senderEd25519: next.ed25519Public }), /signature/);
    // A reseal the server swapped for another message's key only makes this message unreadable.
    const other = M.sealKey(sodium, sodium.randombytes_buf(32), next.x25519Public);
    assert.throws(() => open({ ...envelope, reseal: { key_version: 2, sealed_key: b64encode(other) } }), /does not decrypt/);
    assert.throws(() => open({ ...envelope, reseal: { key_version: 0, sealed_key: b64encode(resealed) } }), /out of range/);
    assert.throws(() => open(envelope, { userId: "id-nobody" }), /not sealed to this account/);
  });

  test("a whole set: progress, every key opens with v+1, a set for another version is refused", async () => {
    const keys = people();
    const me = msgs.recipients[0].user_id;
    const old = keys[me];
    const next = generateKeyPairs(sodium, 2);
    const fileKeys = [];
    const documents = [];
    for (let i = 0; i < 3; i++) {
      const id = D.generateDocumentId(sodium);
      const fk = D.generateFileKey(sodium);
      fileKeys.push({ id, fk });
      documents.push({ id: b64encode(id), sealed_key: b64encode(D.sealFileKey(sodium, fk, id, old.x25519Public, 1)) });
    }
    const messages = msgs.envelopes.map((e) => ({
      id: e.envelope.id,
      conversation_id: e.envelope.conversation_id,
      sealed_key: e.envelope.recipients.find((r) => r.user_id === me).sealed_key,
    }));
    const set = { key_version: 1, documents, messages };
    assert.equal(resealCount(set), 3 + msgs.envelopes.length);
    const seen = [];
    let pauses = 0;
    const out = await resealSet(sodium, set, old, next, {
      onProgress: (done, total) => seen.push([done, total]),
      pause: async () => {
        pauses += 1;
      },
      every: 2,
    });
    const total = resealCount(set);
    assert.deepEqual(seen[0], [0, total]);
    assert.deepEqual(seen.at(-1), [total, total]);
    assert.ok(pauses >= 2);
    assert.deepEqual(out.documents.map((d) => d.id), documents.map((d) => d.id));
    assert.deepEqual(out.messages.map((m) => m.id), messages.map((m) => m.id));
    out.documents.forEach((d, i) => {
      const sealed = b64decode(d.sealed_key);
      assert.equal(D.sealedKeyVersion(sealed), 2);
      assert.deepEqual(D.openFileKey(sodium, sealed, fileKeys[i].id, next), fileKeys[i].fk);
    });
    out.messages.forEach((m, i) => {
      const e = msgs.envelopes[i];
      const env = { ...e.envelope, reseal: { key_version: 2, sealed_key: m.sealed_key } };
      assert.equal(M.openEnvelope(sodium, env, { conversationId: env.conversation_id, userId: me, keys: next, senderEd25519: keys[msgs.sender.user_id].ed25519Public }), e.text);
    });

    await assert.rejects(resealSet(sodium, { ...set, key_version: 2 }, old, next), (error) => error.code === "keys_changed");
    await assert.rejects(resealSet(sodium, set, old, generateKeyPairs(sodium, 3)), /next version/);
    const broken = { ...set, messages: [...messages, { id: "m-broken", sealed_key: b64encode(new Uint8Array(81).fill(1)) }] };
    await assert.rejects(resealSet(sodium, broken, old, next), (error) => error instanceof ResealFailed && error.itemId === "m-broken" && error.code === "reseal_failed");
    const stale = { ...set, messages: [{ ...messages[0], key_version: 3 }] };
    await assert.rejects(resealSet(sodium, stale, old, next), (error) => error instanceof ResealFailed && /version 3/.test(error.message));
    const badId = { ...set, documents: [{ id: "AAAA", sealed_key: documents[0].sealed_key }] };
    await assert.rejects(resealSet(sodium, badId, old, next), (error) => error instanceof ResealFailed && error.itemKind === "document");
    const empty = await resealSet(sodium, { key_version: 1, documents: [], messages: [] }, old, next);
    assert.deepEqual(empty, { documents: [], messages: [] });
  });

  test("keysOfVersion says which version is missing", () => {
    const a = generateKeyPairs(sodium, 1);
    const b = generateKeyPairs(sodium, 2);
    assert.equal(keysOfVersion([a, b], 2), b);
    assert.equal(keysOfVersion(a, 1), a);
    assert.throws(() => keysOfVersion(a, 2), /version 2/);
  });
});

describe("own-key monitoring (§12 step 3 with §14)", () => {
  const me = "user-me";
  const keysOf = () => [1, 2, 3].map((v) => generateKeyPairs(sodium, v));
  const item = (index, kind, k, userId = me) => ({
    index,
    kind,
    user_id: userId,
    key_version: k.version,
    data: b64encode(
      KT.encodeEntry({
        kind,
        userId,
        version: k.version,
        x25519: k.x25519Public,
        ed25519: k.ed25519Public,
        signature: new Uint8Array(64).fill(k.version),
        timestampMs: 1795000000000 + index,
      }),
    ),
  });
  const holding = (k) => ({ userId: me, version: k.version, x25519: k.x25519Public, ed25519: k.ed25519Public });
  const refused = (entries, k, pattern) => assert.throws(() => KT.checkOwnEntries(entries, holding(k)), (e) => e instanceof KT.TransparencyError && pattern.test(e.message));

  test("one publish per version up to the current one, the current one mine: accepted", () => {
    const [k1, k2] = keysOf();
    KT.checkOwnEntries([item(0, "publish", k1)], holding(k1));
    const rotated = [item(0, "publish", k1), item(4, "compromise", k1), item(7, "publish", k2), item(8, "supersede", k1)];
    KT.checkOwnEntries(rotated, holding(k2));
  });

  test("a gap, a duplicate, a version above mine, or a current key I never made: refused", () => {
    const [k1, k2, k3] = keysOf();
    refused([item(7, "publish", k2)], k2, /version 1 of mine is missing/);
    refused([item(0, "publish", k1), item(3, "publish", k3)], k3, /version 2 of mine is missing/);
    refused([item(0, "publish", k1)], k2, /version 2 of mine is missing/);
    const other2 = generateKeyPairs(sodium, 2);
    refused([item(0, "publish", k1), item(5, "publish", k2), item(6, "publish", other2)], k2, /twice/);
    refused([item(0, "publish", k1), item(5, "publish", k2), item(9, "publish", k3)], k2, /version 3 in my name that I never made/);
    refused([item(0, "publish", k1), item(5, "publish", other2)], k2, /version 2 in my name that I never made/);
    refused([], k1, /version 1 of mine is missing/);
  });

  test("the logged bytes count, not the fields listed beside them; entries must be canonical", () => {
    const [k1, k2] = keysOf();
    // Listed as a supersede (or as version 1, or as someone else's), but the logged bytes
    // publish a second key version in my name: that is what is checked.
    refused([item(0, "publish", k1), { ...item(5, "publish", k2), kind: "supersede" }], k1, /version 2 in my name that I never made/);
    refused([item(0, "publish", k1), { ...item(5, "publish", k2), key_version: 1, user_id: "x" }], k1, /version 2 in my name/);
    // Versions must appear in increasing log order, each index once.
    refused([item(5, "publish", k1), item(2, "publish", k2)], k2, /out of order/);
    refused([item(0, "publish", k1), item(0, "supersede", k1)], k1, /listed twice/);
    const extended = b64encode(new Uint8Array([...b64decode(item(0, "publish", k1).data), 0]));
    refused([{ ...item(0, "publish", k1), data: extended }], k1, /truncated|shape|canonical/);
    refused([{ ...item(0, "publish", k1), data: "not base64url!" }], k1, /base64url/);
    // The server searched the log by my id: an entry naming someone else is refused (§12.4),
    // and so is a supersede of a version never published.
    refused([item(0, "publish", k1), item(2, "publish", k2, "user-other")], k1, /names another account/);
    refused([item(0, "supersede", k2), item(1, "publish", k1)], k1, /never published/);
    const decoded = KT.decodeEntry(b64decode(item(3, "publish", k2).data));
    assert.equal(decoded.version, 2);
    assert.equal(decoded.userId, me);
    assert.equal(decoded.timestampMs, 1795000000003);
  });
});

describe("attachment keys (§9.8)", () => {
  test("sealed only for members who cannot read my document yet, none for others' documents", () => {
    const owner = generateKeyPairs(sodium, 1);
    const reader = generateKeyPairs(sodium, 1);
    const newcomer = generateKeyPairs(sodium, 3);
    session.account = { id: "u-owner", keys: owner };
    try {
      const id = D.generateDocumentId(sodium);
      const fileKey = D.generateFileKey(sodium);
      const mine = { id: b64encode(id), rawId: id, ownerId: "u-owner", fileKey, data: { grants: [{ user_id: "u-reader" }] } };
      const theirs = { ...mine, id: "other", ownerId: "u-reader" };
      const conv = { members: [{ user_id: "u-owner" }, { user_id: "u-reader" }, { user_id: "u-new" }] };
      const checked = {
        "u-reader": { version: 1, x25519: reader.x25519Public },
        "u-new": { version: 3, x25519: newcomer.x25519Public },
      };
      const keys = attachmentKeys(sodium, conv, [mine, theirs], checked);
      assert.deepEqual(keys.map((k) => [k.document_id, k.user_id]), [[mine.id, "u-new"]]);
      const sealed = b64decode(keys[0].sealed_key);
      assert.equal(D.sealedKeyVersion(sealed), 3);
      assert.deepEqual(D.openFileKey(sodium, sealed, id, newcomer), fileKey);
    } finally {
      session.account = null;
    }
  });
});
