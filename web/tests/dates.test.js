/** Day, month and year boxes: strict parsing, any of the digit sets a phone keyboard types. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { asciiDigits, parseDateParts } from "../src/dates.js";

test("a real date gives ISO 8601; all three empty gives none", () => {
  assert.deepEqual(parseDateParts("31", "12", "2027"), { iso: "2027-12-31" });
  assert.deepEqual(parseDateParts("1", "2", "2028"), { iso: "2028-02-01" });
  assert.deepEqual(parseDateParts(" 29", "2 ", "2028"), { iso: "2028-02-29" });
  assert.deepEqual(parseDateParts("", " ", ""), { empty: true });
});

test("Arabic-Indic and Persian digits are read as the same numbers", () => {
  assert.equal(asciiDigits("٣١"), "31");
  assert.equal(asciiDigits("۲۰۲۷"), "2027");
  assert.deepEqual(parseDateParts("٣١", "١٢", "٢٠٢٧"), { iso: "2027-12-31" });
});

test("anything that is not a calendar date is refused, never guessed", () => {
  for (const [d, m, y] of [
    ["31", "2", "2027"],
    ["29", "2", "2027"],
    ["0", "1", "2027"],
    ["1", "13", "2027"],
    ["1", "1", "27"],
    ["1", "1", "20270"],
    ["1", "", "2027"],
    ["1a", "1", "2027"],
    ["-1", "1", "2027"],
    ["1", "1", "1899"],
    ["123", "1", "2027"],
    ["1.5", "1", "2027"],
  ]) {
    assert.deepEqual(parseDateParts(d, m, y), { invalid: true }, `${d}/${m}/${y}`);
  }
  assert.equal(asciiDigits("１２"), null); // full-width digits are not in the accepted sets
});
