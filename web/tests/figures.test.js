/** Outcome reporting (§28): randomized response, the record's text, the release's exports. */

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  barFractions,
  forDisplay,
  keepProbability,
  keepThreshold,
  outcomeConversationId,
  outcomePlaintext,
  parseOutcome,
  parseRecord,
  randomizeAnswers,
  randomizeValue,
  releaseCsv,
  releaseJson,
  sodiumDraws,
} from "../src/figures.js";
import { loadSodium } from "./helpers.js";

const T_VISA = ["none", "preparing", "filed", "granted", "denied"];

/** Fixed draws: `random()` and `uniform(n)` answer from the lists given, in turn. */
function fixed(randoms, uniforms = []) {
  return { random: () => randoms.shift(), uniform: (n) => uniforms.shift() % n };
}

/** A seeded 32-bit generator (xorshift32): libsodium-free and the same on every run. */
function xorshift(seed) {
  let x = seed >>> 0;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return { random: next, uniform: (n) => Math.floor((next() / 2 ** 32) * n) };
}

test("keep probability and threshold match the spec's table (§28.4)", () => {
  assert.ok(Math.abs(keepProbability(1, 5) - 0.40461) < 1e-6);
  assert.equal(keepThreshold(1, 5), 1737785322);
  assert.equal(keepThreshold(1, 4), 2041685230);
  assert.equal(keepThreshold(1, 6), 1512633486);
  assert.equal(keepThreshold(1, 12), 851049110);
});

test("a draw below the threshold keeps the truth; above it picks among the others in list order", () => {
  const t = keepThreshold(1, 5);
  assert.equal(randomizeValue(T_VISA, "filed", 1, fixed([t - 1])), "filed");
  assert.equal(randomizeValue(T_VISA, "filed", 1, fixed([0])), "filed");
  // The others of "filed", in order: none, preparing, granted, denied.
  assert.equal(randomizeValue(T_VISA, "filed", 1, fixed([t], [0])), "none");
  assert.equal(randomizeValue(T_VISA, "filed", 1, fixed([t], [2])), "granted");
  assert.equal(randomizeValue(T_VISA, "filed", 1, fixed([2 ** 32 - 1], [3])), "denied");
  assert.throws(() => randomizeValue(T_VISA, "maybe", 1, fixed([0])));
});

test("over many draws each value is sent as often as p and q say, and the estimate finds the truth", () => {
  const draws = xorshift(0x9e3779b9);
  const n = 60_000;
  const p = keepProbability(1, 5);
  const q = (1 - p) / 4;
  // A known population: 50 % none, 30 % filed, 20 % granted.
  const truth = (i) => (i % 10 < 5 ? "none" : i % 10 < 8 ? "filed" : "granted");
  const counts = Object.fromEntries(T_VISA.map((v) => [v, 0]));
  for (let i = 0; i < n; i++) counts[randomizeValue(T_VISA, truth(i), 1, draws)] += 1;
  const expected = { none: 0.5, preparing: 0, filed: 0.3, granted: 0.2, denied: 0 };
  for (const v of T_VISA) {
    const share = expected[v] * p + (1 - expected[v]) * q;
    const sd = Math.sqrt(n * share * (1 - share));
    assert.ok(Math.abs(counts[v] - n * share) < 5 * sd, `${v}: ${counts[v]} vs ${n * share}`);
    const estimate = (counts[v] - n * q) / (p - q);
    assert.ok(Math.abs(estimate - n * expected[v]) < (5 * sd) / (p - q), `${v} estimate ${estimate}`);
  }
});

test("libsodium's draws give a field's values only, and every field is answered", async () => {
  const sodium = await loadSodium();
  const schema = { epsilon: 1, fields: [{ name: "t_visa", values: T_VISA }, { name: "protective_order", values: ["not_sought", "sought", "obtained", "denied"] }] };
  const seen = new Set();
  for (let i = 0; i < 400; i++) {
    const out = randomizeAnswers(schema, { t_visa: "filed", protective_order: "sought" }, sodiumDraws(sodium));
    assert.deepEqual(Object.keys(out), ["t_visa", "protective_order"]);
    assert.ok(T_VISA.includes(out.t_visa));
    seen.add(out.t_visa);
  }
  assert.equal(seen.size, T_VISA.length);
});

test("the record's text has sorted keys, no spaces, and opens only for its period", () => {
  const text = outcomePlaintext("2026-Q4", { u_visa: "none", t_visa: "filed" });
  assert.equal(text, '{"answers":{"t_visa":"filed","u_visa":"none"},"kind":"haven.outcome.v1","period":"2026-Q4"}');
  assert.deepEqual(parseOutcome(text, "2026-Q4"), { t_visa: "filed", u_visa: "none" });
  assert.equal(parseOutcome(text, "2026-Q3"), null);
  assert.equal(parseOutcome('{"kind":"other","period":"2026-Q4","answers":{}}', "2026-Q4"), null);
  assert.equal(parseOutcome("not json", "2026-Q4"), null);
  assert.equal(outcomeConversationId("c1", "2026-Q4"), "outcome:c1:2026-Q4");
  const bytes = (text) => new TextEncoder().encode(text);
  assert.deepEqual(parseRecord(bytes('{"id":"x"}')), { id: "x" });
  for (const bad of ["[1]", "null", "{", "7"]) assert.equal(parseRecord(bytes(bad)), null);
  assert.equal(parseRecord(Uint8Array.of(0xff, 0xfe)), null);
});

const RELEASE = {
  id: "r1",
  period: "2026-Q4",
  created_at: "2026-11-30T10:00:00Z",
  epsilon: 0.6,
  confidence: 0.95,
  figures: [
    { name: "cases_opened", kind: "central", mechanism: "discrete_laplace", epsilon: 0.1, bound: 1, scale: 10, value: 123, interval: [93, 153], suppressed: false },
    { name: "intake_reports", kind: "central", mechanism: "discrete_laplace", epsilon: 0.1, bound: 1, scale: 10, value: null, interval: null, suppressed: true },
    {
      name: "outcome.t_visa",
      kind: "local",
      mechanism: "randomized_response",
      epsilon: 1,
      reports: 240,
      suppressed: false,
      categories: [{ value: "none", estimate: 251.3, interval: [193, 309.6] }, { value: "granted", estimate: -41.9, interval: [-84.2, 0.3] }],
    },
  ],
};

test("the CSV has a row per figure and category, with epsilon and mechanism on each", () => {
  const lines = releaseCsv(RELEASE).trimEnd().split("\r\n");
  assert.equal(lines[0], "period,created_at,confidence,figure,kind,mechanism,epsilon,bound,scale,reports,category,value,interval_low,interval_high,suppressed");
  assert.equal(lines[1], "2026-Q4,2026-11-30T10:00:00Z,0.95,cases_opened,central,discrete_laplace,0.1,1,10,,,123,93,153,false");
  assert.equal(lines[2], "2026-Q4,2026-11-30T10:00:00Z,0.95,intake_reports,central,discrete_laplace,0.1,1,10,,,,,,true");
  assert.equal(lines[4], "2026-Q4,2026-11-30T10:00:00Z,0.95,outcome.t_visa,local,randomized_response,1,,,240,granted,-41.9,-84.2,0.3,false");
  assert.equal(lines.length, 5);
});

test("a text cell a spreadsheet would run is defused and quoted when needed", () => {
  const odd = { ...RELEASE, figures: [{ ...RELEASE.figures[0], name: '=HYPERLINK("x")' }] };
  assert.match(releaseCsv(odd).split("\r\n")[1], /,"'=HYPERLINK\(""x""\)",/);
});

test("the JSON export keeps the privacy parameters and only the protocol's fields", () => {
  const out = JSON.parse(releaseJson({ ...RELEASE, figures: [{ ...RELEASE.figures[0], extra: "x" }] }));
  assert.deepEqual(Object.keys(out), ["period", "created_at", "epsilon", "confidence", "figures"]);
  assert.equal(out.figures[0].epsilon, 0.1);
  assert.equal(out.figures[0].mechanism, "discrete_laplace");
  assert.equal("extra" in out.figures[0], false);
});

test("bars and whiskers stay on the axis, and shown numbers inside [0, n]", () => {
  assert.deepEqual(forDisplay(-41.9, [-84.2, 0.3], 240), { value: 0, interval: [0, 0.3] });
  assert.deepEqual(forDisplay(251.3, [193, 309.6], 240), { value: 240, interval: [193, 240] });
  assert.deepEqual(forDisplay(130, [-469.6, 729.6]), { value: 130, interval: [0, 729.6] });
  assert.deepEqual(barFractions(-41.9, [-84.2, 0.3], 240), { bar: 0, lo: 0, hi: 0.3 / 240 });
  assert.deepEqual(barFractions(300, [250, 350], 240), { bar: 1, lo: 1, hi: 1 });
});
