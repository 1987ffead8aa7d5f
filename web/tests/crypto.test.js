/** Rules around the vectors: canonical encodings, parameter refusal, round trips. */

import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { b64decode, b64encode, EncodingError, frame, lp, u32, u64, utf8 } from "../src/crypto/encoding.js";
import {
  checkKdfParams,
  checkPassphraseStrength,
  deriveMasterKey,
  newKdfParams,
  passphraseStrength,
  WeakParameters,
} from "../src/crypto/kdf.js";
import {
  formatRecoveryKey,
  generateKeyPairs,
  generateRecoveryKey,
  normalizeUsername,
  parseRecoveryKey,
  ProtocolError,
  publicRecord,
  recordMatchesKeys,
  unwrapBundle,
  verifyPublicRecord,
  wrapBundle,
} from "../src/crypto/keys.js";
import { loadSodium } from "./helpers.js";

let sodium;
before(async () => {
  sodium = await loadSodium();
});

const SALT = b64encode(new Uint8Array(16).fill(7));
const GOOD = { alg: "argon2id13", salt: SALT, opslimit: 3, memlimit: 64 * 1024 * 1024 };

describe("base64url", () => {
  test("round-trips every length 0..64 and matches node's encoder", () => {
    for (let n = 0; n <= 64; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 255);
      const text = b64encode(bytes);
      assert.equal(text, Buffer.from(bytes).toString("base64url"));
      assert.deepEqual(b64decode(text), bytes);
    }
  });
  for (const bad of ["AA==", "AA=", "A", "AB", "AAB", "AA+A", "AA/A", "AA A", "é", "AAAAA", 5, null]) {
    test(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => b64decode(bad), EncodingError);
    });
  }
  test("accepts the canonical forms of the same lengths", () => {
    assert.deepEqual(b64decode("AA"), Uint8Array.of(0));
    assert.deepEqual(b64decode("AAA"), Uint8Array.of(0, 0));
    assert.deepEqual(b64decode(""), new Uint8Array(0));
  });
});

describe("integers and frames", () => {
  test("u32 and u64 are big-endian", () => {
    assert.deepEqual(u32(1), Uint8Array.of(0, 0, 0, 1));
    assert.deepEqual(u32(0xffffffff), Uint8Array.of(255, 255, 255, 255));
    assert.deepEqual(u64(258), Uint8Array.of(0, 0, 0, 0, 0, 0, 1, 2));
    assert.throws(() => u32(-1), RangeError);
    assert.throws(() => u32(2 ** 32), RangeError);
    assert.throws(() => u64(-1), RangeError);
  });
  test("lp and frame", () => {
    assert.deepEqual(lp(utf8("ab")), Uint8Array.of(0, 0, 0, 2, 97, 98));
    assert.deepEqual(frame("L", Uint8Array.of(9)), Uint8Array.of(0, 0, 0, 1, 76, 0, 0, 0, 1, 9));
    assert.throws(() => frame("é"), EncodingError);
  });
});

describe("KDF parameters (§2.2)", () => {
  test("accepts the defaults and the ceilings", () => {
    checkKdfParams(GOOD);
    checkKdfParams({ ...GOOD, opslimit: 16, memlimit: 1024 * 1024 * 1024 });
    checkKdfParams({ ...GOOD, memlimit: 64 * 1024 * 1024 + 1024 });
  });
  const hostile = {
    "another algorithm": { alg: "argon2i13" },
    "no algorithm": { alg: undefined },
    "a 15-byte salt": { salt: b64encode(new Uint8Array(15)) },
    "a 17-byte salt": { salt: b64encode(new Uint8Array(17)) },
    "a padded salt": { salt: `${SALT}==` },
    "a missing salt": { salt: undefined },
    "opslimit 2": { opslimit: 2 },
    "opslimit 17": { opslimit: 17 },
    "opslimit as a string": { opslimit: "3" },
    "opslimit fractional": { opslimit: 3.5 },
    "memlimit below 64 MiB": { memlimit: 64 * 1024 * 1024 - 1024 },
    "memlimit above 1 GiB": { memlimit: 1024 * 1024 * 1024 + 1024 },
    "memlimit not a multiple of 1024": { memlimit: 64 * 1024 * 1024 + 1 },
    "memlimit as a string": { memlimit: "67108864" },
  };
  for (const [name, change] of Object.entries(hostile)) {
    test(`refuses ${name}, without running Argon2id`, () => {
      let ran = false;
      const spy = { crypto_pwhash: () => { ran = true; }, crypto_pwhash_ALG_ARGON2ID13: 2 };
      assert.throws(() => checkKdfParams({ ...GOOD, ...change }), WeakParameters);
      assert.throws(() => deriveMasterKey(spy, utf8("x"), { ...GOOD, ...change }), WeakParameters);
      assert.equal(ran, false);
    });
  }
  test("refuses a missing parameter object", () => {
    assert.throws(() => checkKdfParams(null), WeakParameters);
  });
  test("new parameters are the protocol defaults with a fresh salt", () => {
    const a = newKdfParams(sodium);
    const b = newKdfParams(sodium);
    assert.equal(a.opslimit, 3);
    assert.equal(a.memlimit, 67108864);
    assert.equal(a.salt.length, 16);
    assert.notDeepEqual(a.salt, b.salt);
  });
});

describe("passphrases (§2.1)", () => {
  test("twelve characters after NFKC is the minimum", () => {
    assert.throws(() => checkPassphraseStrength("elevenchars"), WeakParameters);
    checkPassphraseStrength("twelve chars");
    // "ﬁ" is one character that NFKC turns into two.
    checkPassphraseStrength("ﬁﬁﬁﬁﬁﬁ");
    assert.throws(() => checkPassphraseStrength("ﬁﬁﬁﬁﬁ"), WeakParameters);
  });
  test("more than 1024 bytes is refused", () => {
    checkPassphraseStrength("a".repeat(1024));
    assert.throws(() => checkPassphraseStrength("a".repeat(1025)), WeakParameters);
    assert.throws(() => checkPassphraseStrength("é".repeat(513)), WeakParameters);
  });
  test("strength hint grows with length and variety", () => {
    assert.equal(passphraseStrength("short"), 0);
    assert.equal(passphraseStrength("aaaaaaaaaaaa"), 1);
    assert.equal(passphraseStrength("river stone lamp"), 2);
    assert.equal(passphraseStrength("correct horse battery staple"), 3);
  });
});

describe("usernames", () => {
  test("normalised like the server", () => {
    assert.equal(normalizeUsername("  Amira.K "), "amira.k");
    assert.equal(normalizeUsername("ＡＭＩＲＡ"), "amira");
  });
  for (const bad of ["ab", ".amira", "amira k", "a".repeat(33), "amira!", ""]) {
    test(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => normalizeUsername(bad), ProtocolError);
    });
  }
});

describe("recovery keys (§2.4)", () => {
  test("format and parse round-trip; 13 groups of 4", () => {
    const key = generateRecoveryKey(sodium);
    const text = formatRecoveryKey(key);
    assert.match(text, /^([A-Z2-7]{4}-){12}[A-Z2-7]{4}$/);
    assert.deepEqual(parseRecoveryKey(text), key);
    assert.deepEqual(parseRecoveryKey(` ${text.toLowerCase().replaceAll("-", "  ")} `), key);
  });
  test("refuses wrong alphabet, wrong length and non-zero slack bits", () => {
    const text = formatRecoveryKey(new Uint8Array(32)).replaceAll("-", "");
    assert.throws(() => parseRecoveryKey(`${text.slice(0, -1)}B`), /canonical/);
    assert.throws(() => parseRecoveryKey(text.slice(1)), ProtocolError);
    assert.throws(() => parseRecoveryKey(`${text}A`), ProtocolError);
    assert.throws(() => parseRecoveryKey(`${text.slice(0, -1)}1`), ProtocolError);
    assert.throws(() => parseRecoveryKey(`${text.slice(0, -1)}=`), ProtocolError);
  });
});

describe("key bundles and public records", () => {
  test("a fresh bundle round-trips and is bound to owner, version and key", () => {
    const keys = generateKeyPairs(sodium, 1);
    const wrapKey = sodium.randombytes_buf(32);
    const blob = wrapBundle(sodium, keys, "amira", wrapKey);
    assert.equal(blob.length, 106);
    assert.equal(blob[0], 1);
    const back = unwrapBundle(sodium, blob, "amira", 1, wrapKey);
    assert.deepEqual(back.x25519Secret, keys.x25519Secret);
    assert.deepEqual(back.ed25519Public, keys.ed25519Public);
    assert.throws(() => unwrapBundle(sodium, blob, "bashir", 1, wrapKey), ProtocolError);
    assert.throws(() => unwrapBundle(sodium, blob, "amira", 1, sodium.randombytes_buf(32)), ProtocolError);
    const tampered = blob.slice();
    tampered[0] = 2;
    assert.throws(() => unwrapBundle(sodium, tampered, "amira", 1, wrapKey), /format/);
    assert.throws(() => unwrapBundle(sodium, blob.subarray(0, 105), "amira", 1, wrapKey), /format/);
  });
  test("a record verifies for its owner only and matches its keys", () => {
    const keys = generateKeyPairs(sodium, 1);
    const record = publicRecord(sodium, keys, "amira");
    const checked = verifyPublicRecord(sodium, record, "amira");
    assert.ok(recordMatchesKeys(checked, keys));
    assert.ok(!recordMatchesKeys(checked, generateKeyPairs(sodium, 1)));
    assert.throws(() => verifyPublicRecord(sodium, record, "bashir"), ProtocolError);
    assert.throws(() => verifyPublicRecord(sodium, { ...record, version: 2 }, "amira"), ProtocolError);
    assert.throws(() => verifyPublicRecord(sodium, { ...record, version: 0 }, "amira"), ProtocolError);
    assert.throws(() => verifyPublicRecord(sodium, { ...record, x25519: record.ed25519 }, "amira"), ProtocolError);
    assert.throws(() => verifyPublicRecord(sodium, { ...record, signature: "AA" }, "amira"), ProtocolError);
    assert.throws(() => verifyPublicRecord(sodium, { ...record, x25519: `${record.x25519}=` }, "amira"), ProtocolError);
  });
});
