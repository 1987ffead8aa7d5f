/** Second-factor screens (docs/protocol.md §21): the sign-in step, and set-up and removal. */

import { beginTotp, confirmTotp, factorError, factorState, removeTotp } from "../factors.js";
import { h } from "../dom.js";
import { passkeyFactor, passkeySection } from "./passkeys.js";
import { formatDate, t } from "../i18n.js";
import { qrSvg } from "../qr.js";
import { session } from "../session.js";
import { button, field, handleSubmit, heading, required } from "../ui.js";

const CODE_ERRORS = new Set(["bad_factor", "code_used", "no_pending_sign_in", "recent_sign_in_required", "factor_required"]);

function codeField(label) {
  return field({
    label,
    name: "code",
    autocomplete: "one-time-code",
    dir: "ltr",
    attrs: { inputmode: "text", autocapitalize: "characters", spellcheck: "false", maxlength: "32" },
  });
}

/** Run a factor step; its own refusals show on the code field, anything else as usual. */
async function step(code, call) {
  try {
    return await call();
  } catch (error) {
    if (!CODE_ERRORS.has(error?.code)) throw error;
    code.setError(factorError(error));
    code.input.focus();
    return null;
  }
}

/** Where a full sign-in goes next: forced key rotation, required set-up, or home. */
export function afterSignIn(ctx, account) {
  if (account.mustRotate) ctx.go("rotate", { forced: true });
  else if (account.mustEnrolFactor) ctx.go("factors", { required: true });
  else ctx.go("home");
}

/** The sign-in step after the passphrase: a code from the app, or a recovery code. */
export function factorSignIn(ctx) {
  if (!session.isPending) {
    ctx.go("login");
    return [];
  }
  const code = codeField(t("factor.code"));
  const form = h("form", { class: "stack", "aria-labelledby": "screen-title" }, code.el, h("button", { type: "submit", class: "btn primary" }, t("factor.submit")));
  handleSubmit(form, {
    context: "login",
    validate: () => required(code),
    action: async () => {
      const account = await step(code, () => session.completeFactor(code.input.value));
      code.input.value = "";
      if (account) afterSignIn(ctx, account);
    },
  });
  return [heading(t("factor.signInTitle")), passkeyFactor(ctx, afterSignIn), h("p", {}, t("factor.signInIntro")), form, h("p", {}, button(t("common.back"), () => ctx.go("login"), "link"))];
}

function recoveryCodes(ctx, codes) {
  return [
    h("h2", { id: "factor-codes-title" }, t("factor.codesTitle")),
    h("p", {}, t("factor.codesIntro")),
    h("ol", { class: "plain-list", id: "factor-codes", dir: "ltr" }, codes.map((c) => h("li", {}, h("code", {}, c)))),
    h("p", {}, button(t("factor.codesDone"), () => ctx.go("factors", { notice: "factor.enabled" }), "primary", { id: "factor-codes-done" })),
  ];
}

function enrolForm(ctx, region, started) {
  const code = codeField(t("factor.code"));
  const form = h("form", { class: "stack", id: "factor-confirm", "aria-labelledby": "factor-setup-title" }, code.el, h("button", { type: "submit", class: "btn primary" }, t("factor.confirm")));
  handleSubmit(form, {
    context: "change",
    validate: () => required(code),
    action: async () => {
      const codes = await step(code, () => ctx.authenticated(() => confirmTotp(code.input.value)));
      if (codes) region.replaceChildren(...recoveryCodes(ctx, codes));
    },
  });
  return [
    h("h2", { id: "factor-setup-title" }, t("factor.setUp")),
    h("p", {}, t("factor.scan")),
    qrSvg(started.uri, t("factor.qrLabel")),
    h("p", {}, t("factor.key"), " ", h("code", { id: "factor-secret", dir: "ltr" }, started.secret)),
    form,
  ];
}

function offView(ctx, region) {
  const status = h("p", { role: "status", class: "form-error" });
  const start = button(t("factor.setUp"), async () => {
    status.textContent = "";
    try {
      const started = await ctx.authenticated(() => beginTotp());
      region.replaceChildren(...enrolForm(ctx, region, started));
    } catch (error) {
      status.textContent = factorError(error);
    }
  }, "primary", { id: "factor-start" });
  return [h("p", {}, t("factor.off")), start, status];
}

function onView(ctx, state) {
  const status = h("p", { role: "status", class: "form-error" });
  const remove = button(t("factor.remove"), async () => {
    status.textContent = "";
    try {
      await ctx.authenticated(() => removeTotp());
      ctx.go("factors", { notice: "factor.removed" });
    } catch (error) {
      status.textContent = factorError(error);
    }
  }, "secondary", { id: "factor-remove" });
  return [
    h("p", { class: "notice", id: "factor-on" }, t("factor.on", { date: formatDate(state.totp.enrolled_at), n: state.recovery_codes_left })),
    state.required ? null : remove,
    status,
  ];
}

/** "Second factor": the authenticator app on or off; required for counsel and admins by policy. */
export function factors(ctx, params) {
  const region = h("div", { "aria-busy": "true" }, h("p", { role: "status" }, t("common.loading")));
  ctx
    .authenticated(() => factorState())
    .then((state) => {
      region.replaceChildren(...(state.totp ? onView(ctx, state) : offView(ctx, region)));
      region.removeAttribute("aria-busy");
    })
    .catch((error) => {
      region.replaceChildren(h("p", { class: "error-box", role: "alert" }, factorError(error)));
      region.removeAttribute("aria-busy");
    });
  return [
    heading(t("factor.title")),
    params.notice ? h("p", { class: "notice", role: "status" }, t(params.notice)) : null,
    params.required ? h("p", { class: "notice", id: "factor-required" }, t("factor.required")) : null,
    h("p", {}, t("factor.intro")),
    region,
    passkeySection(ctx),
    h("p", {}, button(t("common.back"), () => ctx.go("home"), "link")),
  ];
}
