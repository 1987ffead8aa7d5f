/** The offline bundle verifier (web/verify/verify.js) on the vector bundle, as the Python one. */

import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { describe, test } from "node:test";
import { canonicalDetail, partKind, verifyBundle } from "../verify/verify.js";
import { loadSodium, VECTORS_DIR } from "./helpers.js";

const ROOT = join(VECTORS_DIR, "bundle");
const EXPECTED = JSON.parse(readFileSync(join(VECTORS_DIR, "bundle.expected.json"), "utf8"));

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [relative(ROOT, path).split(sep).join("/")];
  });
}

/** The vector folder as a source, with one byte of `changed` flipped. */
function source(changed = null) {
  const files = new Map(walk(ROOT).map((p) => [p, new Uint8Array(readFileSync(join(ROOT, p)))]));
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

describe("evidence bundle verifier", () => {
  test("the vector bundle verifies", async () => {
    const sodium = await loadSodium();
    const outcome = await verifyBundle(sodium, source());
    assert.deepEqual(outcome.failures, EXPECTED.failures);
    assert.equal(outcome.checked.length, 4);
  });

  for (const [path, part] of Object.entries(EXPECTED.tampered)) {
    test(`one changed byte in ${path} fails as ${part}`, async () => {
      const sodium = await loadSodium();
      const outcome = await verifyBundle(sodium, source(path));
      assert.deepEqual([...new Set(outcome.failures.map((f) => f.part))], [part], JSON.stringify(outcome.failures));
    });
  }

  test("part names and canonical details follow the Python client", () => {
    assert.equal(partKind("keys/x-1.json"), "proof");
    assert.equal(partKind("unknown"), "manifest");
    assert.equal(canonicalDetail({ size: 3, purpose: "view" }), '{"purpose":"view","size":3}');
    assert.equal(canonicalDetail({ n: "é" }), '{"n":"\\u00e9"}');
  });
});
