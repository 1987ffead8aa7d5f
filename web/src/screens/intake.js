/**
 * The reporter's intake screens (protocol §20), no account: write a report, keep the
 * receipt (shown once, two words typed back), come back with it, read and answer.
 */

import { ApiError } from "../api.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";
import { addMessage, attachFile, checkReceipt, comeBack, fetchAttachment, submitReport, thread } from "../intake.js";
import { sodiumReady } from "../sodium.js";
import { joinButton } from "./intake-move.js";
import { button, field, handleSubmit, heading, required } from "../ui.js";

const DANGER = ["unknown", "no", "yes"];

function textArea(name, label, attrs = {}) {
  return field({ label, type: "textarea", name, dir: attrs.dir ?? "auto", attrs: { rows: "4", ...attrs } });
}

/** The report form: free text and the structured answers of §20.3. */
export function intake(ctx) {
  const text = textArea("intake-text", t("intakeWeb.text"), { maxlength: "20000" });
  const language = field({ label: t("intakeWeb.language"), name: "intake-language", dir: "auto", attrs: { maxlength: "64" } });
  const way = field({ label: t("intakeWeb.contactWay"), name: "intake-way", dir: "auto", attrs: { maxlength: "200" } });
  const time = field({ label: t("intakeWeb.contactTime"), name: "intake-time", dir: "auto", attrs: { maxlength: "200" } });
  const danger = h(
    "fieldset",
    { class: "field" },
    h("legend", {}, t("intakeWeb.danger")),
    DANGER.map((value) =>
      h("label", { class: "check" }, h("input", { type: "radio", name: "intake-danger", value, checked: value === "unknown" }), " ", t(`intakeWeb.danger.${value}`)),
    ),
  );
  const photo = field({ label: t("intakeWeb.attach"), type: "file", name: "intake-file" });
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "screen-title", id: "intake-form" },
    text.el,
    language.el,
    way.el,
    time.el,
    danger,
    photo.el,
    h("button", { type: "submit", class: "btn primary" }, t("intakeWeb.send")),
  );
  handleSubmit(form, {
    context: "intake",
    validate: () => required(text),
    action: async () => {
      const receipt = await submitReport({
        text: text.input.value,
        language: language.input.value.trim(),
        contactWay: way.input.value.trim(),
        contactTime: time.input.value.trim(),
        danger: form.querySelector('input[name="intake-danger"]:checked')?.value ?? "unknown",
      });
      // Sent in the session the report opened, before the receipt is shown (§20.11).
      // A file that fails does not cost her the receipt: it is shown, with what went wrong.
      const attachFailed = photo.input.files.length ? await attachFile(photo.input.files[0]).then(() => false, () => true) : false;
      text.input.value = "";
      ctx.go("intakeReceipt", { receipt, attachFailed });
    },
  });
  return [
    heading(t("intakeWeb.title")),
    h("p", {}, t("intakeWeb.intro")),
    form,
    h("p", {}, button(t("intakeWeb.haveReceipt"), () => ctx.go("intakeReturn"), "link", { id: "intake-have-receipt" })),
    h("p", {}, button(t("common.back"), () => ctx.go("login"), "link", { id: "intake-back" })),
    h("p", { class: "hint" }, t("exit.hint")),
  ];
}

/** The receipt, once: twelve numbered words. */
export function intakeReceipt(ctx, params) {
  const words = params.receipt.split(" ");
  const list = h(
    "ol",
    { class: "key-groups", id: "intake-receipt", dir: "ltr", lang: "en", "aria-label": t("intakeWeb.receipt.title") },
    words.map((w, i) => h("li", { "data-word": i + 1, translate: "no" }, h("span", { class: "n", "aria-hidden": "true" }, i + 1), h("span", { class: "g" }, w))),
  );
  return [
    heading(t("intakeWeb.receipt.title")),
    params.attachFailed ? h("p", { class: "error-box", role: "alert" }, t("intake2.attachFailed")) : null,
    h("p", {}, t("intakeWeb.receipt.intro")),
    list,
    h("p", {}, button(t("intakeWeb.receipt.done"), async () => {
      const sodium = await sodiumReady();
      let a = 1 + sodium.randombytes_uniform(words.length);
      let b = a;
      while (b === a) b = 1 + sodium.randombytes_uniform(words.length);
      if (a > b) [a, b] = [b, a];
      ctx.go("intakeConfirm", { receipt: params.receipt, ask: [a, b] });
    }, "primary", { id: "intake-receipt-done" })),
  ];
}

/** Type back two of the words; then the receipt is gone from the page. */
export function intakeConfirm(ctx, params) {
  const words = params.receipt.split(" ");
  const [a, b] = params.ask;
  const make = (n) =>
    field({ label: t("intakeWeb.confirm.field", { n }), name: `word-${n}`, dir: "ltr", attrs: { autocapitalize: "none", spellcheck: "false", maxlength: "12", "data-word": n } });
  const first = make(a);
  const second = make(b);
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "screen-title" },
    h("p", {}, t("intakeWeb.confirm.intro", { a, b })),
    h("div", { class: "pair" }, first.el, second.el),
    h("button", { type: "submit", class: "btn primary" }, t("recoveryConfirm.submit")),
  );
  const same = (f, n) => f.input.value.trim().toLowerCase() === words[n - 1];
  handleSubmit(form, {
    validate: () =>
      required(first, second) ??
      (!same(first, a) ? { field: first, message: t("error.confirmMismatch") } : !same(second, b) ? { field: second, message: t("error.confirmMismatch") } : null),
    action: async () => ctx.go("intakeThread", { entries: await thread() }),
  });
  return [heading(t("intakeWeb.confirm.title")), form];
}

/** Come back: the receipt opens her report on this device. */
export function intakeReturn(ctx) {
  const receipt = textArea("intake-receipt-words", t("intakeWeb.return.field"), {
    rows: "3",
    dir: "ltr",
    autocapitalize: "none",
    autocomplete: "off",
    spellcheck: "false",
    maxlength: "200",
  });
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "screen-title" },
    receipt.el,
    h("button", { type: "submit", class: "btn primary" }, t("intakeWeb.return.submit")),
  );
  handleSubmit(form, {
    context: "intake",
    validate: () => required(receipt),
    action: async () => {
      try {
        await checkReceipt(receipt.input.value);
      } catch {
        receipt.setError(t("intakeWeb.return.bad"));
        return;
      }
      let entries;
      try {
        entries = await comeBack(receipt.input.value);
      } catch (error) {
        if (!(error instanceof ApiError) || error.code !== "receipt_unknown") throw error;
        receipt.setError(t("intakeWeb.return.unknown"));
        return;
      }
      receipt.input.value = "";
      ctx.go("intakeThread", { entries });
    },
  });
  return [
    heading(t("intakeWeb.return.title")),
    form,
    h("p", {}, button(t("common.back"), () => ctx.go("intake"), "link")),
  ];
}

/** Hand decrypted bytes to the browser's download (the object URL lives a second). */
export function saveBytes(data, att) {
  const url = URL.createObjectURL(new Blob([data], { type: att.mimeType }));
  const a = h("a", { href: url, download: att.name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

const save = (att) => fetchAttachment(att).then((data) => saveBytes(data, att));

function entryView(ctx, e) {
  const who = t(e.mine ? "intakeWeb.thread.you" : "intakeWeb.thread.team");
  const body = e.attachment
    ? h("p", { dir: "auto" }, e.attachment.name, " ", button(t("intakeWeb.save"), () => save(e.attachment).catch(() => {}), "link", { "data-attachment": e.seq }))
    : h("p", { dir: "auto" }, e.report ? e.report.text : e.text);
  return h("li", { class: e.mine ? "mine" : "theirs", "data-seq": e.seq }, h("p", { class: "hint" }, who), body, joinButton(ctx, e));
}

/** Her report's thread, and a message to the team. */
export function intakeThread(ctx, params) {
  const text = textArea("intake-reply", t("intakeWeb.reply"), { rows: "3", maxlength: "20000" });
  const file = field({ label: t("intakeWeb.attach"), type: "file", name: "intake-file" });
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "screen-title" },
    text.el,
    file.el,
    h("button", { type: "submit", class: "btn primary" }, t("intakeWeb.reply.send")),
  );
  handleSubmit(form, {
    context: "intake",
    validate: () => (file.input.files.length ? null : required(text)),
    action: async () => {
      if (file.input.files.length) await attachFile(file.input.files[0]);
      if (text.input.value.trim()) await addMessage(text.input.value);
      text.input.value = "";
      ctx.go("intakeThread", { entries: await thread() });
    },
  });
  const refresh = async () => ctx.go("intakeThread", { entries: await thread() });
  return [
    heading(t("intakeWeb.thread.title")),
    h("ol", { class: "stack", id: "intake-thread" }, params.entries.map((e) => entryView(ctx, e))),
    form,
    h("p", {}, button(t("intakeWeb.refresh"), () => refresh().catch(() => {}), "secondary", { id: "intake-refresh" })),
  ];
}
