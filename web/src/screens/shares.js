/** Split recovery screens (docs/protocol.md §22): split my key, the shares I keep, and a recovery through shares. */

import { get } from "../api.js";
import { h } from "../dom.js";
import { formatDate, t } from "../i18n.js";
import { qrSvg } from "../qr.js";
import { session } from "../session.js";
import { cancelShareRecovery, enterPrintedShare, finishShareRecovery, heldShares, mySplit, releaseHeldShare, splitMyRecoveryKey, startShareRecovery } from "../shares.js";
import { NO_SAVE, button, checkNewPassphrase, errorMessage, field, handleSubmit, heading, newPassphraseField, required, secret, showPassphrases } from "../ui.js";

const shareField = () =>
  field({ label: t("shares.printed"), name: "printed-share", dir: "ltr", attrs: { autocapitalize: "characters", spellcheck: "false", maxlength: "140" } });

function requestLine(request) {
  if (!request) return null;
  const key = { waiting: "shares.waiting", cancelled: "shares.cancelled", completed: "shares.completed" }[request.state];
  return h("p", { class: request.state === "waiting" ? "warn-box" : "notice", "data-share-request": request.state }, t(key, { date: formatDate(request.ready_at) }));
}

/** A survivor's warning that someone is recovering her account, with Cancel; empty otherwise. */
export function shareRecoveryWarning(ctx) {
  const box = h("div", { "data-share-warning": "" });
  if (session.account?.role !== "survivor") return box;
  ctx
    .authenticated(() => mySplit())
    .then(({ request }) => {
      if (request?.state !== "waiting") return;
      const cancel = button(t("shares.cancel"), async () => {
        cancel.disabled = true;
        await ctx.authenticated(() => cancelShareRecovery()).catch(() => {});
        ctx.go("shares", { notice: "shares.cancelDone" });
      }, "primary", { id: "cancel-share-recovery" });
      box.replaceChildren(h("div", { class: "warn-box", role: "alert" }, h("p", {}, t("shares.someone", { date: formatDate(request.ready_at) })), cancel));
    })
    .catch(() => {});
  return box;
}

function splitForm(ctx, counsel) {
  const key = field({ label: t("field.recovery"), name: "recovery-key", dir: "ltr", attrs: { autocapitalize: "characters", spellcheck: "false", maxlength: "80" } });
  const select = h("select", { id: "share-counsel", name: "counsel" }, ...counsel.map((m) => h("option", { value: m.user_id }, m.username)));
  const out = h("div", { id: "printed-share-out" });
  const form = h(
    "form",
    { class: "stack", id: "share-split", "aria-labelledby": "share-split-title" },
    key.el,
    h("div", { class: "field" }, h("label", { for: "share-counsel" }, t("shares.counsel")), select),
    h("button", { type: "submit", class: "btn primary" }, t("shares.split")),
  );
  handleSubmit(form, {
    context: "recover",
    validate: () => required(key),
    action: async () => {
      const member = counsel.find((m) => m.user_id === select.value);
      const text = await ctx.authenticated(() => splitMyRecoveryKey(key.input.value, member));
      key.input.value = "";
      out.replaceChildren(
        h("p", {}, t("shares.printedIntro")),
        h("p", { class: "key-groups", dir: "ltr", lang: "en", id: "printed-share" }, text),
        qrSvg(text, t("shares.printed")),
      );
    },
  });
  return [h("h2", { id: "share-split-title" }, t("shares.splitTitle")), h("p", {}, t("shares.intro")), form, out];
}

function heldList(ctx, held) {
  if (!held.length) return [];
  return [
    h("h2", {}, t("shares.heldTitle")),
    h(
      "ul",
      { class: "plain-list", id: "held-shares" },
      held.map((item) => {
        const row = h("li", { "data-held": item.owner_username }, h("p", { dir: "auto" }, item.owner_username), requestLine(item.request));
        if (item.request?.state === "waiting" && !item.request.released.includes(item.slot)) {
          const status = h("p", { role: "status" });
          const release = button(t("shares.release"), async () => {
            release.disabled = true;
            try {
              await ctx.authenticated(() => releaseHeldShare(item));
              ctx.go("shares", { notice: "shares.released" });
            } catch (error) {
              release.disabled = false;
              status.textContent = errorMessage(error);
            }
          }, "primary", { "data-release": item.owner_username });
          row.append(h("p", { class: "hint" }, t("shares.releaseHint")), release, status);
        }
        return row;
      }),
    ),
  ];
}

/** "Recovery shares": split my key (survivors), a waiting recovery to cancel, shares I keep. */
export function shares(ctx, params) {
  const region = h("div", { "aria-busy": "true" }, h("p", { role: "status" }, t("common.loading")));
  const isSurvivor = session.account.role === "survivor";
  Promise.all([
    ctx.authenticated(() => heldShares()),
    isSurvivor ? ctx.authenticated(() => mySplit()) : null,
    isSurvivor ? ctx.authenticated(() => get("/cases")) : { cases: [] },
  ])
    .then(([held, mine, { cases }]) => {
      const members = cases.flatMap((c) => c.members).filter((m) => m.role === "counsel");
      const parts = [];
      if (isSurvivor) {
        parts.push(shareRecoveryWarning(ctx));
        if (mine.setup) parts.push(h("p", { class: "notice", id: "split-set" }, t("shares.isSet", { date: formatDate(mine.setup.created_at) })));
        if (members.length) parts.push(...splitForm(ctx, members));
      }
      parts.push(...heldList(ctx, held));
      region.replaceChildren(...parts);
      region.removeAttribute("aria-busy");
    })
    .catch((error) => {
      region.replaceChildren(h("p", { class: "error-box", role: "alert" }, errorMessage(error)));
      region.removeAttribute("aria-busy");
    });
  return [
    heading(t("shares.title")),
    params.notice ? h("p", { class: "notice", role: "status" }, t(params.notice)) : null,
    region,
    h("p", {}, button(t("common.back"), () => ctx.go("home"), "link")),
  ];
}

/** Lost passphrase and recovery key: start, add the printed share, and finish a recovery through shares. */
export function shareRecover(ctx) {
  const user = field({ label: t("field.username"), name: "username", autocomplete: "username", dir: "ltr", attrs: { spellcheck: "false", autocapitalize: "none" } });
  const pass = secret(newPassphraseField(t("field.passphrase.new")));
  const again = secret(field({ label: t("field.passphrase.again"), type: "password", name: "passphrase-again", autocomplete: NO_SAVE, attrs: { spellcheck: "false" } }));
  const state = h("div", { id: "share-recovery-state", role: "status" });
  const show = (request) => state.replaceChildren(requestLine(request) ?? "", request ? h("p", {}, t("shares.releasedCount", { n: request.released.length })) : "");
  const start = h("form", { class: "stack", id: "share-start", "aria-labelledby": "screen-title" }, user.el, pass.el, again.el);
  start.append(showPassphrases(start), h("button", { type: "submit", class: "btn primary" }, t("shares.start")));
  const creds = () => required(user, pass, again) ?? checkNewPassphrase(pass, again);
  handleSubmit(start, { context: "recover", validate: creds, action: async () => show(await startShareRecovery(user.input.value, pass.input.value)) });
  const printed = shareField();
  const add = h("form", { class: "stack", id: "share-enter" }, printed.el, h("button", { type: "submit", class: "btn secondary" }, t("shares.add")));
  handleSubmit(add, {
    context: "recover",
    validate: () => creds() ?? required(printed),
    action: async () => {
      show(await enterPrintedShare(user.input.value, pass.input.value, printed.input.value));
      printed.input.value = "";
    },
  });
  const finish = h("form", { class: "stack", id: "share-finish" }, h("button", { type: "submit", class: "btn primary" }, t("shares.finish")));
  handleSubmit(finish, {
    context: "recover",
    validate: creds,
    action: async () => {
      const { request, account } = await finishShareRecovery(user.input.value, pass.input.value);
      if (!account) return show(request);
      pass.input.value = "";
      again.input.value = "";
      ctx.go(account.mustRotate ? "rotate" : "home", account.mustRotate ? { forced: true } : { notice: "home.recovered" });
    },
  });
  return [
    heading(t("shares.recoverTitle")),
    h("p", {}, t("shares.recoverIntro")),
    start,
    state,
    h("h2", {}, t("shares.addTitle")),
    add,
    finish,
    h("p", {}, button(t("common.back"), () => ctx.go("login"), "link")),
  ];
}
