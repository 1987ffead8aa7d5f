/** Witnessed checkpoints (§15): every value and case in tests/vectors/checkpoint.json. */

import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { b64decode } from "../src/crypto/encoding.js";
import {
  ALG_COSIGNATURE_V1,
  CheckpointError,
  checkpointBody,
  cosignatureMessage,
  logVerifier,
  parseBody,
  parseNote,
  parseSignatureLine,
  parseVerifierKey,
  verifyCosigned,
  verifySignature,
} from "../src/crypto/checkpoint.js";
import { loadSodium, vectors } from "./helpers.js";

const v = vectors("checkpoint");
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
let sodium;

before(async () => {
  sodium = await loadSodium();
});

describe("checkpoint vectors", () => {
  test("log verifier key and key hash", () => {
    const key = parseVerifierKey(sodium, v.log.vkey);
    assert.equal(hex(key.keyHash), v.log.key_hash);
    const fromPublic = logVerifier(sodium, v.origin, b64decode(v.log.public_key));
    assert.deepEqual(fromPublic, key);
  });

  test("checkpoint body", () => {
    const body = { origin: v.origin, size: v.checkpoint.size, root: b64decode(v.checkpoint.root) };
    assert.equal(checkpointBody(sodium, body), v.checkpoint.text);
    assert.deepEqual(parseBody(sodium, v.checkpoint.text), body);
  });

  test("the log's note signature", () => {
    const sig = parseSignatureLine(sodium, v.log_signature_line.slice(0, -1));
    assert.equal(verifySignature(sodium, v.checkpoint.text, sig, parseVerifierKey(sodium, v.log.vkey)), null);
  });

  test("witness keys, cosignature messages and lines", () => {
    for (const w of v.witnesses) {
      const key = parseVerifierKey(sodium, w.vkey);
      assert.equal(key.alg, ALG_COSIGNATURE_V1);
      assert.equal(hex(key.keyHash), w.key_hash);
      assert.equal(new TextDecoder().decode(cosignatureMessage(v.checkpoint.text, w.timestamp)), w.message);
      const sig = parseSignatureLine(sodium, w.line.slice(0, -1));
      assert.equal(verifySignature(sodium, v.checkpoint.text, sig, key), BigInt(w.timestamp));
    }
    assert.equal(parseNote(sodium, v.note).signatures.length, 1 + v.witnesses.length);
  });

  for (const c of v.cases) {
    test(`case: ${c.name}`, () => {
      const logKeys = [parseVerifierKey(sodium, v.log.vkey)];
      const witnessKeys = c.witnesses.map((i) => parseVerifierKey(sodium, v.witnesses[i].vkey));
      if (c.expect === "accept") {
        assert.equal(verifyCosigned(sodium, c.note, logKeys, witnessKeys, c.quorum).size, v.checkpoint.size);
      } else {
        assert.throws(
          () => verifyCosigned(sodium, c.note, logKeys, witnessKeys, c.quorum),
          (err) => err instanceof CheckpointError && err.reason === c.expect,
        );
      }
    });
  }

  test("a witness listed twice counts once", () => {
    const logKeys = [parseVerifierKey(sodium, v.log.vkey)];
    const w = parseVerifierKey(sodium, v.witnesses[0].vkey);
    const note = v.cases.find((c) => c.name === "quorum not met").note;
    assert.throws(() => verifyCosigned(sodium, note, logKeys, [w, w], 2), CheckpointError);
  });

  test("malformed bodies and keys are refused", () => {
    for (const text of ["origin\n5\n", `origin\n05\n${"A".repeat(43)}=\n`, `orig in\n5\n${"A".repeat(43)}=\n`]) {
      assert.throws(() => parseBody(sodium, text), CheckpointError);
    }
    assert.throws(() => parseVerifierKey(sodium, `${v.log.vkey.slice(0, -2)}AA`), CheckpointError);
    assert.throws(() => parseVerifierKey(sodium, "a+b"), CheckpointError);
  });
});
