/**
 * Outcome reports and private figures (docs/protocol.md §28): counsel's report of a case's
 * outcomes, randomized here before it leaves and sealed to the case like a message, and
 * the admin console's released figures drawn as bars with their intervals, exported as
 * CSV and JSON made in the page. No identity, case id or username on the admin side.
 */

import { get, post } from "../api.js";
import { openMessage, sealText } from "../chat.js";
import { b64decode, b64encode, utf8 } from "../crypto/encoding.js";
import { h, svg, uid } from "../dom.js";
import * as F from "../figures.js";
import { formatDateTime, language, t } from "../i18n.js";
import { joinIsolated, tIsolated } from "../bidi.js";
import { sodiumReady } from "../sodium.js";
import { button, errorMessage, heading } from "../ui.js";
import { confirmed, section } from "./admin.js";
import { blobUrl } from "./documents.js";

const casePath = (caseId) => `/cases/${encodeURIComponent(caseId)}`;

/** A number in the page's language, with at most `digits` decimals. */
function num(x, digits = 1) {
  try {
    return new Intl.NumberFormat(language(), { maximumFractionDigits: digits }).format(x);
  } catch {
    return String(x);
  }
}

/** A value's label: languages by their name in the page's language, the rest from the catalog. */
function valueLabel(field, value) {
  if (field === "language" && value !== "other") {
    try {
      return new Intl.DisplayNames([language()], { type: "language" }).of(value) ?? value;
    } catch {
      return value;
    }
  }
  return t(`figures.value.${value}`);
}

/** A case's reports, each record verified and opened: [{period, submittedAt, answers | null}]. */
async function openedOutcomes(caseRec, outcomes) {
  return Promise.all(
    outcomes.map(async (o) => {
      const envelope = F.parseRecord(b64decode(o.record));
      const conv = { id: F.outcomeConversationId(caseRec.id, o.period), members: caseRec.members };
      const opened = envelope ? await openMessage(conv, envelope) : { refused: true };
      return { period: o.period, submittedAt: o.submitted_at, answers: opened.refused ? null : F.parseOutcome(opened.text, o.period) };
    }),
  );
}

/** Randomize the answers, seal the true ones to the case's members, and report them (§28.3). */
async function report(caseRec, schema, answers) {
  const sodium = await sodiumReady();
  const conv = {
    id: F.outcomeConversationId(caseRec.id, schema.period),
    ttl: 0,
    members: caseRec.members.map((m) => ({ ...m, key_version: m.public_keys.version })),
  };
  const { envelope } = await sealText(conv, F.outcomePlaintext(schema.period, answers));
  const body = {
    period: schema.period,
    epsilon: schema.epsilon,
    answers: F.randomizeAnswers(schema, answers, F.sodiumDraws(sodium)),
    record: b64encode(utf8(JSON.stringify(envelope))),
  };
  return post(`${casePath(caseRec.id)}/outcomes`, body);
}

/** The true answers of one report, as a list of field: value. */
function answerList(schema, answers) {
  return h(
    "dl",
    { class: "admin-figures outcome-answers" },
    schema.fields.map(({ name }) => [h("dt", {}, t(`figures.field.${name}`)), h("dd", { "data-answer": name }, answers[name] ? valueLabel(name, answers[name]) : "—")]),
  );
}

/** The form: one select per field, the true answer chosen; randomized only when sent. */
function reportForm(ctx, caseRec, schema) {
  const alert = h("p", { class: "form-error", role: "alert" });
  const selects = schema.fields.map(({ name, values }) => {
    const id = uid("outcome");
    const select = h("select", { id, name }, values.map((v) => h("option", { value: v }, valueLabel(name, v))));
    return { name, select, el: h("div", { class: "field" }, h("label", { for: id }, t(`figures.field.${name}`)), select) };
  });
  const submit = h("button", { type: "submit", class: "btn primary" }, t("figures.submit"));
  const form = h("form", { class: "stack", "data-outcome-form": schema.period }, h("p", { class: "hint" }, t("figures.intro")), selects.map((s) => s.el), submit, alert);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    alert.textContent = "";
    try {
      const answers = Object.fromEntries(selects.map((s) => [s.name, s.select.value]));
      await ctx.authenticated(() => report(caseRec, schema, answers));
      ctx.go("outcomes", { caseId: caseRec.id, notice: "figures.sent" });
    } catch (error) {
      submit.disabled = false;
      alert.textContent = error?.code === "outcome_already_reported" ? t("figures.already") : errorMessage(error, "documents");
    }
  });
  return form;
}

/** Counsel's outcome report of one case for the current period, and the case's reports. */
export function outcomes(ctx, params) {
  const region = h("div", { "aria-busy": "true" }, h("p", { role: "status" }, t("common.loading")));
  ctx
    .authenticated(async () => {
      const [schema, { case: caseRec }, { outcomes: list }] = await Promise.all([
        get("/figures/outcomes/schema"),
        get(casePath(params.caseId)),
        get(`${casePath(params.caseId)}/outcomes`),
      ]);
      const opened = await openedOutcomes(caseRec, list);
      const current = opened.find((o) => o.period === schema.period);
      return [
        current ? null : h("h2", {}, tIsolated("figures.period", { period: schema.period })),
        current ? null : reportForm(ctx, caseRec, schema),
        opened.map((o) =>
          h(
            "section",
            { class: "panel", "data-outcome": o.period },
            h("h2", {}, tIsolated("figures.reported", { period: o.period })),
            h("p", { class: "hint" }, formatDateTime(o.submittedAt)),
            o.answers ? answerList(schema, o.answers) : h("p", { class: "error-box" }, t("figures.unreadable")),
          ),
        ),
      ];
    })
    .then((children) => region.replaceChildren(...children.flat().filter(Boolean)))
    .catch((error) => region.replaceChildren(h("p", { class: "error-box", role: "alert" }, errorMessage(error))))
    .finally(() => region.removeAttribute("aria-busy"));
  return [
    heading(t("figures.title")),
    params.notice ? h("p", { class: "notice", role: "status" }, t(params.notice)) : null,
    region,
    h("p", {}, button(t("common.back"), () => ctx.go("home"), "link")),
  ];
}

/** A bar from 0 with its interval as a whisker; the text beside it is its alternative. */
function bar(label, raw, max, confidence, n) {
  const textId = uid("fig");
  const { value, interval } = F.forDisplay(raw.value, raw.interval, n);
  const f = F.barFractions(value, interval, max);
  const x = (v) => (v * 100).toFixed(2);
  const text = t("figures.estimate", { value: num(value), lo: num(interval[0]), hi: num(interval[1]), confidence: num(confidence * 100, 0) });
  return h(
    "div",
    { class: "fig-row" },
    label ? h("span", { class: "fig-label", id: `${textId}-l` }, label) : null,
    svg(
      "svg",
      { class: "fig-bar", viewBox: "0 0 100 12", preserveAspectRatio: "none", role: "img", "aria-labelledby": label ? `${textId}-l ${textId}` : textId, focusable: "false" },
      svg("rect", { class: "fig-track", x: "0", y: "2", width: "100", height: "8" }),
      svg("rect", { class: "fig-fill", x: "0", y: "2", width: x(f.bar), height: "8" }),
      svg("line", { class: "fig-whisker", x1: x(f.lo), x2: x(f.hi), y1: "6", y2: "6", "vector-effect": "non-scaling-stroke" }),
      [f.lo, f.hi].map((end) => svg("line", { class: "fig-whisker", x1: x(end), x2: x(end), y1: "1", y2: "11", "vector-effect": "non-scaling-stroke" })),
    ),
    h("span", { class: "fig-value", id: textId }, text),
  );
}

/** One figure: its name, privacy parameters, and a bar, a group of bars or "too few to show". */
function figure(f, confidence) {
  const local = f.kind === "local";
  const field = f.name.replace(/^outcome\./, "");
  const params = [`ε ${num(f.epsilon, 3)}`, t(`figures.mech.${f.mechanism}`), local ? t("figures.reports", { count: f.reports }) : null];
  let body;
  if (f.suppressed) body = h("p", { class: "fig-suppressed", "data-suppressed": "true" }, t("figures.suppressed"));
  else if (local) {
    const bars = f.categories.map((c) => bar(valueLabel(field, c.value), { value: c.estimate, interval: c.interval }, F.axisMax(f), confidence, f.reports));
    body = h("div", { class: "fig-group" }, bars);
  } else body = bar(null, f, F.axisMax(f), confidence);
  return h(
    "div",
    { class: "fig", "data-fig": f.name },
    h("h4", {}, t(local ? `figures.field.${field}` : `figures.fig.${f.name}`)),
    h("p", { class: "hint" }, joinIsolated(params)),
    body,
  );
}

/** A download link for text made here (Blob); revoked with the screen. */
function download(text, type, filename, label) {
  return h("a", { class: "btn secondary small", href: blobUrl(new Blob([text], { type })), download: filename, "data-export": filename.split(".").pop() }, label);
}

/** One release: when, its ε, its exports and every figure. */
function release(r, open) {
  const file = `haven-figures-${r.period}-${r.created_at.slice(0, 19).replaceAll(":", "")}`;
  return h(
    "details",
    { class: "fig-release", open, "data-release": r.id },
    h("summary", {}, tIsolated("figures.releasedAt", { date: formatDateTime(r.created_at), epsilon: num(r.epsilon, 3) })),
    h(
      "p",
      { class: "actions" },
      download(F.releaseCsv(r), "text/csv", `${file}.csv`, t("figures.csv")),
      download(F.releaseJson(r), "application/json", `${file}.json`, t("figures.json")),
    ),
    r.figures.map((f) => figure(f, r.confidence)),
  );
}

/** The admin console's section: the period's budget, its releases, and "Release figures". */
export function figureReleases(ctx) {
  return section(
    "figures.releases",
    async () => {
      const data = await ctx.authenticated(() => get("/admin/figures/releases"));
      const b = data.budget;
      return [
        h("p", { "data-budget-left": String(b.epsilon_left) }, tIsolated("figures.budget", { period: data.period, spent: num(b.epsilon_spent, 3), total: num(b.epsilon_total, 3), left: num(b.epsilon_left, 3) })),
        confirmed(ctx, {
          label: t("figures.release"),
          question: tIsolated("figures.confirm", { period: data.period }),
          run: async () => {
            await post("/admin/figures/releases", { period: data.period });
            ctx.go("admin", { notice: "admin.done" });
          },
          attrs: { "data-release-figures": data.period },
        }),
        ...(data.releases.length ? data.releases.map((r, i) => release(r, i === 0)) : [h("p", {}, t("figures.none"))]),
      ];
    },
    "figures.releases",
  );
}
