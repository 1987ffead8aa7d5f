/**
 * Outcome reports and private figures (docs/protocol.md §28), the pure part: k-ary
 * randomized response with libsodium's draws, the sealed record's plaintext, and the
 * release's exports. No network and no page here, so node tests run it as it is.
 */

export const OUTCOME_KIND = "haven.outcome.v1";
const TWO_32 = 2 ** 32;

/** p = e^ε / (e^ε + k − 1): the chance the true value is sent (§28.4). */
export function keepProbability(epsilon, k) {
  const e = Math.exp(epsilon);
  return e / (e + k - 1);
}

/** floor(p · 2^32): a 32-bit draw below it keeps the true value. */
export function keepThreshold(epsilon, k) {
  return Math.floor(keepProbability(epsilon, k) * TWO_32);
}

/**
 * The draws randomized response uses, from libsodium: `random()` a uniform 32-bit
 * integer (randombytes_random: randombytes_uniform takes at most 2^32 − 1), `uniform(n)`
 * a uniform integer below n.
 */
export function sodiumDraws(sodium) {
  return { random: () => sodium.randombytes_random(), uniform: (n) => sodium.randombytes_uniform(n) };
}

/** One field's answer after randomized response: the truth kept, else another value. */
export function randomizeValue(values, truth, epsilon, draws) {
  if (!values.includes(truth)) throw new Error(`unknown value ${truth}`);
  if (draws.random() < keepThreshold(epsilon, values.length)) return truth;
  const others = values.filter((v) => v !== truth);
  return others[draws.uniform(others.length)];
}

/** Every field of the schema randomized once (§28.4); `answers` must name each field. */
export function randomizeAnswers(schema, answers, draws) {
  const out = {};
  for (const { name, values } of schema.fields) out[name] = randomizeValue(values, answers[name], schema.epsilon, draws);
  return out;
}

/** The record's conversation id: "outcome:" || case id || ":" || period (§28.3). */
export function outcomeConversationId(caseId, period) {
  return `outcome:${caseId}:${period}`;
}

/** The record's text: compact JSON with sorted keys, the true answers inside. */
export function outcomePlaintext(period, answers) {
  const sorted = Object.fromEntries(Object.keys(answers).sort().map((k) => [k, answers[k]]));
  return JSON.stringify({ answers: sorted, kind: OUTCOME_KIND, period });
}

/** A report's `record` bytes as the envelope object they hold (§28.3), or null when they are not one. */
export function parseRecord(bytes) {
  try {
    const value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** The true answers of an opened record, or null when it is not this period's outcome. */
export function parseOutcome(text, period) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const answers = value?.answers;
  if (value?.kind !== OUTCOME_KIND || value.period !== period || typeof answers !== "object" || answers === null) return null;
  return Object.values(answers).every((v) => typeof v === "string") ? answers : null;
}

/** A number kept inside [lo, hi] (estimates are raw; the page clamps them for display). */
export function clamp(x, lo, hi) {
  return Math.min(hi, Math.max(lo, x));
}

/** A figure as shown: estimate and interval clamped to [0, n] (the export keeps them raw, §28.6). */
export function forDisplay(value, interval, n = Infinity) {
  return { value: clamp(value, 0, n), interval: [clamp(interval[0], 0, n), clamp(interval[1], 0, n)] };
}

/**
 * A bar and its whisker as fractions of the axis [0, max]: {bar, lo, hi}, each clamped,
 * so a negative estimate draws no bar and an interval past the axis stops at its end.
 */
export function barFractions(value, interval, max) {
  const top = max > 0 ? max : 1;
  const f = (x) => clamp(x, 0, top) / top;
  return { bar: f(value), lo: f(interval[0]), hi: f(interval[1]) };
}

/** The axis of a figure's bars: its reports for an outcome, else the highest interval end. */
export function axisMax(figure) {
  if (figure.kind === "local") return figure.reports;
  return figure.interval ? Math.max(figure.interval[1], figure.value, 1) : 1;
}

const CSV_COLUMNS = [
  "period",
  "created_at",
  "confidence",
  "figure",
  "kind",
  "mechanism",
  "epsilon",
  "bound",
  "scale",
  "reports",
  "category",
  "value",
  "interval_low",
  "interval_high",
  "suppressed",
];

/** One CSV cell: quoted when it must be, and a text a spreadsheet would run as a formula defused. */
function csvCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "string") return String(value);
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The release as CSV: one row per central figure and per outcome category, privacy parameters on each. */
export function releaseCsv(release) {
  const rows = [CSV_COLUMNS];
  for (const f of release.figures) {
    const base = {
      period: release.period,
      created_at: release.created_at,
      confidence: release.confidence,
      figure: f.name,
      kind: f.kind,
      mechanism: f.mechanism,
      epsilon: f.epsilon,
      bound: f.bound,
      scale: f.scale,
      reports: f.reports,
      suppressed: f.suppressed,
    };
    const parts =
      f.kind === "local"
        ? f.categories.length
          ? f.categories.map((c) => ({ ...base, category: c.value, value: c.estimate, interval_low: c.interval[0], interval_high: c.interval[1] }))
          : [base]
        : [{ ...base, value: f.value, interval_low: f.interval?.[0], interval_high: f.interval?.[1] }];
    for (const row of parts) rows.push(CSV_COLUMNS.map((c) => row[c]));
  }
  return rows.map((r) => r.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

const FIGURE_KEYS = ["name", "kind", "mechanism", "epsilon", "bound", "scale", "reports", "value", "interval", "categories", "suppressed"];

/** The release as JSON: its privacy parameters and figures, only the fields the protocol names. */
export function releaseJson(release) {
  const figures = release.figures.map((f) => Object.fromEntries(FIGURE_KEYS.filter((k) => k in f).map((k) => [k, f[k]])));
  const { period, created_at: createdAt, epsilon, confidence } = release;
  return JSON.stringify({ period, created_at: createdAt, epsilon, confidence, figures }, null, 2) + "\n";
}
