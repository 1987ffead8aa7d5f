/** The intake team's inbox: reports by state, one report's thread, reply, assign, handled. */

import { h, uid } from "../dom.js";
import { formatDateTime, t } from "../i18n.js";
import { assignToMe, fetchAttachment, inviteReporter, markHandled, openReport, reply, reports, share } from "../inbox.js";
import { saveBytes } from "./intake.js";
import { session } from "../session.js";
import { tIsolated } from "../bidi.js";
import { button, errorMessage, heading } from "../ui.js";

const STATES = ["new", "assigned", "handled"];

/** A region that fills itself from `load`; a failure shows in it. */
function loading(load) {
  const region = h("div", { "aria-busy": "true" }, h("p", { role: "status" }, t("common.loading")));
  load()
    .then((children) => region.replaceChildren(...[children].flat().filter(Boolean)))
    .catch((error) => region.replaceChildren(h("p", { class: "error-box", role: "alert" }, errorMessage(error))))
    .finally(() => region.removeAttribute("aria-busy"));
  return region;
}

function reportRow(ctx, report) {
  return h(
    "li",
    { class: "member", "data-report": report.id },
    h("span", { class: "member-name" }, formatDateTime(report.created_at)),
    h("span", { class: "badge" }, t(`inbox.state.${report.status}`)),
    button(t("inbox.open"), () => ctx.go("inboxReport", { reportId: report.id }), "secondary small", { "data-open-report": report.id }),
  );
}

/** The list: one section per state, newest activity first. */
export function inbox(ctx, params) {
  const list = loading(async () => {
    const rows = await ctx.authenticated(reports);
    if (!rows.length) return h("p", {}, t("inbox.empty"));
    return STATES.map((state) => {
      const mine = rows.filter((r) => r.status === state);
      if (!mine.length) return null;
      const headingId = uid("inbox");
      return h(
        "section",
        { "aria-labelledby": headingId, "data-state": state },
        h("h2", { id: headingId }, t(`inbox.state.${state}`)),
        h("ul", { class: "member-list" }, mine.map((r) => reportRow(ctx, r))),
      );
    });
  });
  return [
    heading(t("inbox.title")),
    params.notice ? h("p", { class: "notice", role: "status" }, t(params.notice)) : null,
    list,
    h("p", {}, button(t("common.back"), () => ctx.go("home"), "link")),
  ];
}

function entryItem(report, entry, names) {
  const who = entry.authorId === null ? t("inbox.reporter") : entry.authorId === session.account.id ? t("home.you") : (names[entry.authorId] ?? "?");
  const c = entry.content;
  let body;
  if (entry.refused) body = h("p", { class: "error-box", "data-refused": "" }, t("inbox.refused"));
  else if (c.report) {
    const r = c.report;
    body = h(
      "div",
      {},
      h("p", { dir: "auto", class: "message-text" }, r.text),
      h(
        "dl",
        { class: "admin-figures" },
        [
          ["inbox.danger", t(`inbox.danger.${r.danger}`)],
          ["inbox.language", r.language],
          ["inbox.contact", [r.contactWay, r.contactTime].filter(Boolean).join(" · ")],
        ]
          .filter(([, v]) => v)
          .map(([k, v]) => [h("dt", {}, t(k)), h("dd", { dir: "auto" }, v)]),
      ),
    );
  } else if (c.attachment) {
    const alert = h("span", { class: "form-error", role: "alert" });
    const save = () => fetchAttachment(report.id, c.attachment).then((data) => saveBytes(data, c.attachment), (error) => (alert.textContent = errorMessage(error)));
    body = h("p", { dir: "auto" }, tIsolated("inbox.attachment", { name: c.attachment.name }), " ", button(t("intake2.save"), save, "link", { "data-inbox-attachment": String(entry.seq) }), alert);
  }
  else body = h("p", { dir: "auto", class: "message-text" }, c.text);
  return h("li", { class: "message", "data-seq": String(entry.seq) }, h("p", { class: "role" }, h("span", { dir: "auto", translate: "no" }, who), " · ", formatDateTime(entry.createdAt)), body);
}

function replyForm(ctx, report) {
  const textId = uid("inbox-reply");
  const text = h("textarea", { id: textId, name: "inbox-reply", rows: "3", dir: "auto", maxlength: "20000", required: "" });
  const alert = h("p", { class: "form-error", role: "alert" });
  const send = h("button", { type: "submit", class: "btn primary" }, t("inbox.send"));
  const form = h("form", { class: "stack", "data-inbox-reply": "" }, h("label", { for: textId }, t("inbox.reply")), text, alert, h("div", { class: "actions" }, send));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!text.value.trim()) return;
    send.disabled = true;
    alert.textContent = "";
    try {
      await ctx.authenticated(() => reply(report, text.value));
      ctx.go("inboxReport", { reportId: report.id, notice: "inbox.sent" });
    } catch (error) {
      alert.textContent = errorMessage(error);
      send.disabled = false;
    }
  });
  return form;
}

function action(ctx, label, call, reportId, attrs) {
  const alert = h("span", { class: "form-error", role: "alert" });
  const run = button(
    label,
    async () => {
      run.disabled = true;
      try {
        await ctx.authenticated(call);
        ctx.go("inboxReport", { reportId, notice: "inbox.done" });
      } catch (error) {
        alert.textContent = errorMessage(error);
        run.disabled = false;
      }
    },
    "secondary",
    attrs,
  );
  return [run, alert];
}

/** Folded: seal the report key to a colleague who joined the team after it arrived (§20.6). */
function shareBox(ctx, report, team) {
  const others = team.filter((m) => m.user_id !== session.account.id);
  if (!others.length) return null;
  return h(
    "details",
    { class: "inbox-share" },
    h("summary", {}, t("inbox.share")),
    h(
      "ul",
      { class: "member-list" },
      others.map((m) =>
        h(
          "li",
          { class: "member" },
          h("span", { class: "member-name", dir: "auto", translate: "no" }, m.username),
          action(ctx, t("inbox.shareWith"), () => share(report, m), report.id, { "data-share": m.user_id, "aria-label": t("inbox.shareWithName", { name: m.username }) }),
        ),
      ),
    ),
  );
}

/** One report: its state, the verified thread, a reply box, assign to me, handled. */
export function inboxReport(ctx, params) {
  const id = params.reportId;
  const thread = loading(async () => {
    const { report, team, names, entries } = await ctx.authenticated(() => openReport(id));
    const me = session.account.id;
    const assignee = report.assignee_id === null ? null : report.assignee_id === me ? t("home.you") : (names[report.assignee_id] ?? "?");
    return [
      h("p", { "data-status": report.status }, t(`inbox.state.${report.status}`), assignee ? [" · ", tIsolated("inbox.assignedTo", { name: assignee })] : null),
      entries === null ? h("p", { class: "notice", "data-not-shared": "" }, t("inbox.notShared")) : h("ol", { class: "messages" }, entries.map((e) => entryItem(report, e, names))),
      entries === null ? null : replyForm(ctx, report),
      h(
        "div",
        { class: "actions" },
        report.assignee_id === me ? null : action(ctx, t("inbox.assignMe"), () => assignToMe(id), id, { "data-assign": "me" }),
        report.status === "handled" ? null : action(ctx, t("inbox.handled"), () => markHandled(id), id, { "data-handled": "" }),
        entries === null ? null : action(ctx, t("intake2.invite"), () => inviteReporter(report, (link) => t("intake2.inviteText", { link })), id, { "data-invite-reporter": "" }),
      ),
      entries === null ? null : shareBox(ctx, report, team),
    ];
  });
  return [
    heading(t("inbox.report")),
    params.notice ? h("p", { class: "notice", role: "status" }, t(params.notice)) : null,
    thread,
    h("p", {}, button(t("common.back"), () => ctx.go("inbox"), "link")),
  ];
}
