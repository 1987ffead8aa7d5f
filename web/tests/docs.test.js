/** The counsel's T/U visa checklist: present, missing, expiring within 90 days. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { visaChecklist } from "../src/docs.js";

const doc = (docType, expiresOn = null) => ({ info: { docType, expiresOn, name: `${docType}.pdf` } });

test("visa checklist: which items are present and which expire within 90 days", () => {
  const today = new Date("2026-11-23T10:00:00Z");
  const items = visaChecklist(
    [doc("national_id", "2027-01-10"), doc("police_report"), doc("immigration_form", "2030-01-01"), doc("medical_record")],
    today,
  );
  const by = Object.fromEntries(items.map((i) => [i.key, i]));
  assert.deepEqual(Object.keys(by), ["identity", "birth", "protection", "immigration"]);
  assert.equal(by.identity.present, true);
  assert.equal(by.identity.expiring.length, 1);
  assert.equal(by.birth.present, false);
  assert.equal(by.protection.present, true);
  assert.equal(by.protection.expiring.length, 0);
  assert.equal(by.immigration.expiring.length, 0);
  const edge = visaChecklist([doc("passport", "2027-02-21"), doc("birth_certificate", "2027-02-22")], today);
  assert.equal(edge[0].expiring.length, 1, "day 90 counts");
  assert.equal(edge[1].expiring.length, 0, "day 91 does not");
  const expired = visaChecklist([doc("passport", "2026-11-01")], today);
  assert.equal(expired[0].expired.length, 1);
});
