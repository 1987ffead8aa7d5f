/**
 * Message catalogs: every language has every English key, the same placeholders, a name and a
 * direction; catalogs not yet checked by a native speaker say so; browser tags find them.
 */

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { bestLanguage, catalogFor } from "../src/langtags.js";

const DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "i18n");
const catalogs = Object.fromEntries(
  readdirSync(DIR)
    .filter((f) => f.endsWith(".json"))
    .map((f) => [f.replace(/\.json$/, ""), JSON.parse(readFileSync(join(DIR, f), "utf8"))]),
);
const placeholders = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

// Machine-assisted translations waiting for a native speaker's review: each must say so in
// `_meta.review` until someone who speaks it has read every string in the running app.
const NEEDS_REVIEW = ["fr", "ht", "pt", "ru", "th", "tl", "vi", "zh"];
const META_FIELDS = ["dir", "locale", "name", "review"];

test("English, Spanish, Arabic and the languages survivors commonly speak are there", () => {
  assert.deepEqual(Object.keys(catalogs).sort(), ["ar", "en", "es", ...NEEDS_REVIEW].sort());
  assert.equal(catalogs.ar._meta.dir, "rtl");
});

for (const code of NEEDS_REVIEW) {
  test(`${code}: marked as needing review by a native speaker`, () => {
    assert.equal(catalogs[code]._meta.review, "needs review by a native speaker");
  });
}

test("browser language tags find their catalog", () => {
  const codes = Object.keys(catalogs);
  const cases = {
    "pt-BR": "pt",
    "pt-PT": "pt",
    "fr-HT": "fr",
    "ht-HT": "ht",
    "vi-VN": "vi",
    "ru-RU": "ru",
    "es-419": "es",
    "ar-EG": "ar",
    "EN_us": "en",
    "fil-PH": "tl",
    "th-TH": "th",
    "zh-CN": "zh",
    "zh-Hans-CN": "zh",
    "zh-TW": "zh",
    "yue-HK": "zh",
    cmn: "zh",
    hat: "ht",
    por: "pt",
    de: null,
    "": null,
  };
  for (const [tag, code] of Object.entries(cases)) assert.equal(catalogFor(tag, codes), code, tag);
  assert.equal(bestLanguage(["de-DE", "pt-BR", "en"], codes, "en"), "pt");
  assert.equal(bestLanguage(["de-DE", "ja"], codes, "en"), "en");
  assert.equal(bestLanguage(undefined, codes, "en"), "en");
});

test("a catalog's locale for dates is one Intl knows", () => {
  for (const [code, catalog] of Object.entries(catalogs)) {
    const locale = catalog._meta.locale ?? code;
    assert.equal(Intl.DateTimeFormat.supportedLocalesOf([locale]).length, 1, `${code}: ${locale}`);
  }
});

for (const [code, catalog] of Object.entries(catalogs)) {
  test(`${code}: same keys and placeholders as English, nothing empty`, () => {
    assert.match(code, /^[a-z]{2,3}$/);
    assert.ok(catalog._meta.name.length > 0);
    assert.ok(["ltr", "rtl"].includes(catalog._meta.dir));
    for (const field of Object.keys(catalog._meta)) assert.ok(META_FIELDS.includes(field), `${code}._meta.${field}`);
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
