/**
 * Two admin console sections: scheduled maintenance (docs/protocol.md §26.2: each job's
 * period and newest run, in words, no ids) and the second-factor policy (§21.5), changed
 * with the console's confirmation and recent sign-in (§25.1).
 */

import { h } from "../dom.js";
import { formatDateTime, formatDuration, t } from "../i18n.js";
import { changes, reads } from "../admin.js";
import { button } from "../ui.js";
import { confirmed, section } from "./admin.js";

/** What a run counted, in words: "Expired grants: 2 · …". */
function counts(run) {
  const parts = Object.entries(run.counts).map(([name, n]) => `${t(`adminJobs.count.${name}`)}: ${n}`);
  return parts.length ? h("span", { class: "hint" }, parts.join(" · ")) : null;
}

/** The newest run of a job, in words. */
function lastRun(run) {
  if (!run) return h("span", {}, t("adminJobs.never"));
  const when = formatDateTime(Date.parse(run.started_at));
  const badge = { ok: "badge ok", failed: "badge danger", running: "badge warn" }[run.outcome];
  return [
    h("span", {}, t("adminJobs.last", { date: when })),
    h("span", { class: badge, "data-outcome": run.outcome }, t(`adminJobs.outcome.${run.outcome}`)),
    run.error ? h("code", { dir: "ltr", translate: "no" }, run.error) : null,
    counts(run),
  ];
}

function jobRow(job) {
  return h(
    "li",
    { class: "member admin-row", "data-job": job.job },
    h("span", { class: "member-name" }, t(`adminJobs.job.${job.job}`)),
    h("span", {}, job.period_seconds ? t("adminJobs.every", { period: formatDuration(job.period_seconds) }) : t("adminJobs.jobOff")),
    lastRun(job.last_run),
  );
}

/** Each scheduled job's period and newest run; reloads when the admin asks. */
export function maintenance(ctx) {
  let box;
  const load = async () => {
    const { is_enabled: isEnabled, jobs } = await ctx.authenticated(reads.jobs);
    return [
      isEnabled ? null : h("p", { class: "warn-box" }, t("adminJobs.schedulerOff")),
      h("ul", { class: "admin-list" }, jobs.map(jobRow)),
      button(t("adminJobs.refresh"), () => box.replaceWith(maintenance(ctx)), "secondary small", { "data-jobs": "refresh" }),
    ];
  };
  box = section("jobs", load, "adminJobs.title");
  return box;
}

/** Whether counsel and admins must have a second factor, and the switch. */
export function factorPolicy(ctx) {
  return section(
    "factor-policy",
    async () => {
      const required = await ctx.authenticated(reads.factorPolicy);
      return [
        h("p", { "data-policy": required ? "required" : "optional" }, t(required ? "adminJobs.policy.on" : "adminJobs.policy.off")),
        confirmed(ctx, {
          label: t(required ? "adminJobs.policy.stop" : "adminJobs.policy.require"),
          question: t(required ? "adminJobs.policy.confirmStop" : "adminJobs.policy.confirmRequire"),
          run: async () => {
            await changes.factorPolicy(!required);
            ctx.go("admin", { notice: "admin.done" });
          },
          attrs: { "data-policy-change": required ? "stop" : "require" },
        }),
      ];
    },
    "adminJobs.policy",
  );
}
