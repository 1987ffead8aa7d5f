/** Message catalogs: every language has every English key, the same placeholders, a name and a direction. */

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "i18n");
const catalogs = Object.fromEntries(
  readdirSync(DIR)
    .filter((f) => f.endsWith(".json"))
    .map((f) => [f.replace(/\.json$/, ""), JSON.parse(readFileSync(join(DIR, f), "utf8"))]),
);
const placeholders = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test("English, Spanish and Arabic are there", () => {
  assert.deepEqual(Object.keys(catalogs).sort(), ["ar", "en", "es"]);
  assert.equal(catalogs.ar._meta.dir, "rtl");
});

for (const [code, catalog] of Object.entries(catalogs)) {
  test(`${code}: same keys and placeholders as English, nothing empty`, () => {
    assert.match(code, /^[a-z]{2,3}$/);
    assert.ok(catalog._meta.name.length > 0);
    assert.ok(["ltr", "rtl"].includes(catalog._meta.dir));
    assert.deepEqual(Object.keys(catalog).sort(), Object.keys(catalogs.en).sort());
    for (const [key, text] of Object.entries(catalog)) {
      if (key === "_meta") continue;
      assert.equal(typeof text, "string", key);
      assert.ok(text.trim().length > 0, `${code}.${key} is empty`);
      assert.deepEqual(placeholders(text), placeholders(catalogs.en[key]), `${code}.${key}`);
      assert.doesNotMatch(text, /[<>]/, `${code}.${key} contains markup`);
    }
  });
}
