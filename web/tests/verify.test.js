/** The offline bundle verifier (web/verify/verify.js) on the vector bundle, as the Python one. */

import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { describe, test } from "node:test";
import { canonicalDetail, partKind, verifyBundle } from "../verify/verify.js";
import { loadSodium, VECTORS_DIR } from "./helpers.js";

const expected = (name) => JSON.parse(readFileSync(join(VECTORS_DIR, `${name}.expected.json`), "utf8"));

function walk(root, dir = root) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(root, path) : [relative(root, path).split(sep).join("/")];
  });
}

/** A vector folder as a source, with one byte of `changed` flipped. */
function source(name, changed = null) {
  const root = join(VECTORS_DIR, name);
  const files = new Map(walk(root).map((p) => [p, new Uint8Array(readFileSync(join(root, p)))]));
  if (changed) {
    const data = files.get(changed).slice();
    data[Math.floor(data.length / 2)] ^= 0x01;
    files.set(changed, data);
  }
  return {
    names: () => [...files.keys()],
    read: async (p) => files.get(p),
    async *chunks(p) {
      const data = files.get(p);
      for (let at = 0; at < data.length; at += 65536) yield data.subarray(at, at + 65536);
    },
  };
}

for (const name of ["bundle", "bundle-ciphertext"]) {
  describe(`evidence bundle verifier: ${name}`, () => {
    test("the vector bundle verifies", async () => {
      const sodium = await loadSodium();
      const outcome = await verifyBundle(sodium, source(name));
      assert.deepEqual(outcome.failures, expected(name).failures);
      assert.equal(outcome.checked.length, 4);
    });

    for (const [path, part] of Object.entries(expected(name).tampered)) {
      test(`one changed byte in ${path} fails as ${part}`, async () => {
        const sodium = await loadSodium();
        const outcome = await verifyBundle(sodium, source(name, path));
        assert.deepEqual([...new Set(outcome.failures.map((f) => f.part))], [part], JSON.stringify(outcome.failures));
      });
    }
  });
}

describe("evidence bundle verifier", () => {
  test("part names and canonical details follow the Python client", () => {
    assert.equal(partKind("keys/x-1.json"), "proof");
    assert.equal(partKind("unknown"), "manifest");
    assert.equal(canonicalDetail({ size: 3, purpose: "view" }), '{"purpose":"view","size":3}');
    assert.equal(canonicalDetail({ n: "é" }), '{"n":"\\u00e9"}');
  });
});
