/** Screens before and around signing in: login, register, recovery key, recover, change. */

import { h } from "../dom.js";
import { duressWarning } from "../duress.js";
import { normalizeUsername, parseRecoveryKey } from "../crypto/keys.js";
import { t } from "../i18n.js";
import { qrSvg } from "../qr.js";
import { session } from "../session.js";
import { sodiumReady } from "../sodium.js";
import { afterSignIn } from "./factors.js";
import { passkeySignIn } from "./passkeys.js";
import { safetyPlanButton } from "./safety-plan.js";
import {
  NO_SAVE,
  button,
  checkNewPassphrase,
  field,
  handleSubmit,
  heading,
  newPassphraseField,
  required,
  secret,
  showPassphrases,
} from "../ui.js";

function usernameField(hint = false) {
  return field({
    label: t("field.username"),
    // The rule and why (protocol §4): exact comparison, no look-alike letters across scripts.
    hint: hint ? t("polish.username.hint") : null,
    name: "username",
    // Not "username": the browser would keep it and offer it in every username box.
    autocomplete: "off",
    dir: "ltr",
    attrs: { autocapitalize: "none", spellcheck: "false", maxlength: "64" },
  });
}

function checkUsername(f) {
  try {
    normalizeUsername(f.input.value);
    return null;
  } catch {
    return { field: f, message: t("polish.username.error") };
  }
}

function notice(key) {
  return key ? h("p", { class: "notice", role: "status" }, t(key)) : null;
}

/** Sign in with username and passphrase. */
export function login(ctx, params) {
  const user = usernameField();
  const pass = secret(
    field({ label: t("field.passphrase"), type: "password", name: "passphrase", autocomplete: NO_SAVE, attrs: { spellcheck: "false" } }),
  );
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "screen-title" },
    user.el,
    pass.el,
    h("button", { type: "submit", class: "btn primary" }, t("login.submit")),
  );
  handleSubmit(form, {
    context: "login",
    validate: () => required(user, pass) ?? checkUsername(user),
    action: async () => {
      const account = await session.login(user.input.value, pass.input.value);
      pass.input.value = "";
      if (account.factor) ctx.go("factorSignIn");
      else afterSignIn(ctx, account);
    },
  });
  return [
    heading(t("login.title")),
    notice(params.notice),
    params.error ? h("p", { class: "error-box", role: "alert" }, t(params.error)) : null,
    form,
    passkeySignIn(ctx, afterSignIn),
    h("p", {}, button(t("login.forgot"), () => ctx.go("recover"), "link")),
    h("div", { class: "more" }, button(t("traces.haveInvite"), () => ctx.go("inviteCode"), "link", { id: "have-invite" })),
    h("div", { class: "more" }, button(t("intakeWeb.link"), () => ctx.go("intake"), "link", { id: "intake-link" })),
    h("p", { class: "hint" }, t("exit.hint")),
    h("div", { class: "more" }, safetyPlanButton(ctx, { name: "login", params: {} })),
  ];
}

/** Redeem an invite: choose a username and passphrase. */
export function register(ctx, params) {
  if (!params.invite) {
    return [heading(t("register.title")), h("p", { class: "error-box", role: "alert" }, t("register.noInvite")),
      h("p", {}, button(t("login.title"), () => ctx.go("login"), "secondary"))];
  }
  const user = usernameField(true);
  const pass = secret(newPassphraseField(t("field.passphrase")));
  const again = secret(
    field({ label: t("field.passphrase.again"), type: "password", name: "passphrase-again", autocomplete: NO_SAVE, attrs: { spellcheck: "false" } }),
  );
  const form = h("form", { class: "stack", "aria-labelledby": "screen-title" }, user.el, pass.el, again.el);
  form.append(showPassphrases(form), h("button", { type: "submit", class: "btn primary" }, t("register.submit")));
  handleSubmit(form, {
    context: "register",
    validate: () => required(user, pass, again) ?? checkUsername(user) ?? checkNewPassphrase(pass, again),
    action: async () => {
      const formatted = await session.register(params.invite, user.input.value, pass.input.value);
      pass.input.value = "";
      again.input.value = "";
      ctx.go("recoveryShow", { formatted });
    },
  });
  return [
    heading(t("register.title")),
    h(
      "div",
      { class: "notice", id: "register-safety" },
      h("p", {}, t("safety.plan.registerNote")),
      safetyPlanButton(ctx, { name: "register", params: { invite: params.invite } }, "secondary"),
    ),
    h("p", {}, t("register.intro")),
    form,
  ];
}

/**
 * Show the recovery key once, in numbered groups (after registration, or the new one
 * after replacing the keys: `params.rotated`).
 */
export function recoveryShow(ctx, params) {
  const groups = params.formatted.split("-");
  const list = h(
    "ol",
    { class: "key-groups", dir: "ltr", lang: "en", "aria-label": t("recoveryShow.title") },
    groups.map((g, i) =>
      h("li", { "data-group": i + 1, translate: "no" }, h("span", { class: "n", "aria-hidden": "true" }, i + 1), h("span", { class: "g" }, g)),
    ),
  );
  // An alternative to paper she carries: a code a trusted person keeps (protocol §2.5).
  const qrArea = h("div", { class: "qr-wrap", id: "recovery-qr", hidden: true });
  const toggle = button(t("polish.recovery.showQr"), () => {
    const show = qrArea.hidden;
    qrArea.replaceChildren(show ? qrSvg(params.formatted, t("polish.recovery.qr")) : "");
    qrArea.hidden = !show;
    toggle.textContent = t(show ? "polish.recovery.hideQr" : "polish.recovery.showQr");
    toggle.setAttribute("aria-expanded", String(show));
  }, "secondary", { "aria-expanded": "false", "aria-controls": "recovery-qr", id: "recovery-qr-toggle" });
  return [
    heading(t(params.rotated ? "recoveryShow.newTitle" : "recoveryShow.title")),
    params.rotated ? h("p", { class: "notice", role: "status" }, t("rotate.done")) : null,
    h("p", {}, t(params.rotated ? "recoveryShow.newIntro" : "recoveryShow.intro")),
    list,
    h("p", { class: "hint", id: "recovery-elsewhere" }, t("polish.recovery.elsewhere")),
    h("p", {}, toggle),
    qrArea,
    h("p", {}, button(t("recoveryShow.done"), async () => {
      const sodium = await sodiumReady();
      let a = 1 + sodium.randombytes_uniform(13);
      let b = a;
      while (b === a) b = 1 + sodium.randombytes_uniform(13);
      if (a > b) [a, b] = [b, a];
      ctx.go("recoveryConfirm", { formatted: params.formatted, ask: [a, b], rotated: params.rotated });
    }, "primary")),
  ];
}

/** Make the person type back two groups of the recovery key before going on. */
export function recoveryConfirm(ctx, params) {
  const groups = params.formatted.split("-");
  const [a, b] = params.ask;
  const make = (n) =>
    field({
      label: t("recoveryConfirm.field", { n }),
      name: `group-${n}`,
      dir: "ltr",
      attrs: { maxlength: "6", autocapitalize: "characters", spellcheck: "false", "data-group": n, inputmode: "text" },
    });
  const first = make(a);
  const second = make(b);
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "screen-title" },
    h("p", {}, t("recoveryConfirm.intro", { a, b })),
    h("div", { class: "pair" }, first.el, second.el),
    h("button", { type: "submit", class: "btn primary" }, t("recoveryConfirm.submit")),
  );
  const clean = (v) => v.replace(/[\s-]/g, "").toUpperCase();
  handleSubmit(form, {
    validate: () =>
      required(first, second) ??
      (clean(first.input.value) !== groups[a - 1]
        ? { field: first, message: t("error.confirmMismatch") }
        : clean(second.input.value) !== groups[b - 1]
          ? { field: second, message: t("error.confirmMismatch") }
          : null),
    action: async () => ctx.go("home", params.rotated ? { notice: "home.keysReplaced" } : {}),
  });
  return [
    heading(t("recoveryConfirm.title")),
    form,
    h("p", {}, button(t("recoveryConfirm.again"), () => ctx.go("recoveryShow", { formatted: params.formatted, rotated: params.rotated }), "link")),
  ];
}

/** Unlock with the recovery key and set a new passphrase. */
export function recover(ctx) {
  const user = usernameField();
  const key = field({
    label: t("field.recovery"),
    hint: t("field.recovery.hint"),
    name: "recovery-key",
    dir: "ltr",
    attrs: { autocapitalize: "characters", spellcheck: "false", maxlength: "80" },
  });
  const pass = secret(newPassphraseField(t("field.passphrase.new")));
  const again = secret(
    field({ label: t("field.passphrase.again"), type: "password", name: "passphrase-again", autocomplete: NO_SAVE, attrs: { spellcheck: "false" } }),
  );
  const form = h("form", { class: "stack", "aria-labelledby": "screen-title" }, user.el, key.el, pass.el, again.el);
  form.append(showPassphrases(form), h("button", { type: "submit", class: "btn primary" }, t("recover.submit")));
  const checkKey = () => {
    try {
      parseRecoveryKey(key.input.value);
      return null;
    } catch {
      return { field: key, message: t("error.badRecoveryKey") };
    }
  };
  handleSubmit(form, {
    context: "recover",
    validate: () => required(user, key, pass, again) ?? checkUsername(user) ?? checkKey() ?? checkNewPassphrase(pass, again),
    action: async () => {
      const account = await session.recover(user.input.value, key.input.value, pass.input.value);
      key.input.value = "";
      pass.input.value = "";
      again.input.value = "";
      if (account.factor) ctx.go("factorSignIn");
      else ctx.go(account.mustRotate ? "rotate" : "home", account.mustRotate ? { forced: true } : { notice: "home.recovered" });
    },
  });
  return [
    heading(t("recover.title")),
    h("p", {}, t("recover.intro")),
    form,
    h("div", { class: "more" }, button(t("shares.lostBoth"), () => ctx.go("shareRecover"), "link", { id: "lost-both" })),
    h("p", {}, button(t("common.back"), () => ctx.go("login"), "link")),
  ];
}

/** Change the passphrase: the same keys, re-wrapped. */
export function change(ctx) {
  const current = secret(
    field({ label: t("field.passphrase.current"), type: "password", name: "current", autocomplete: NO_SAVE, attrs: { spellcheck: "false" } }),
  );
  const pass = secret(newPassphraseField(t("field.passphrase.new")));
  const again = secret(
    field({ label: t("field.passphrase.again"), type: "password", name: "passphrase-again", autocomplete: NO_SAVE, attrs: { spellcheck: "false" } }),
  );
  const form = h("form", { class: "stack", "aria-labelledby": "screen-title" }, current.el, pass.el, again.el);
  form.append(showPassphrases(form), h("button", { type: "submit", class: "btn primary" }, t("change.submit")));
  handleSubmit(form, {
    context: "change",
    validate: () => required(current, pass, again) ?? checkNewPassphrase(pass, again),
    action: async () => {
      const changed = await ctx.authenticated(() => session.changePassphrase(current.input.value, pass.input.value));
      current.input.value = "";
      pass.input.value = "";
      again.input.value = "";
      if (changed.factor) ctx.go("factorSignIn");
      else ctx.go("home", { notice: "home.passphraseChanged" });
    },
  });
  return [heading(t("change.title")), duressWarning(ctx), form, h("p", {}, button(t("common.cancel"), () => ctx.go("home"), "link"))];
}
