/** Form building blocks shared by the screens: labelled fields, errors, busy state. */

import { ApiError } from "./api.js";
import { h, uid } from "./dom.js";
import { passphraseStrength } from "./crypto/kdf.js";
import { t } from "./i18n.js";

/**
 * The autocomplete token of every passphrase field. Chromium offers to save any password
 * field whatever its autocomplete says ("off", "new-password" included), and a saved
 * passphrase on a watched phone gives the account away; a field marked as a one-time code
 * is the one kind it never offers to save (measured in tests/e2e/test_traces_web.py). The
 * field stays type=password, so screen readers still announce it as protected and never
 * speak what is typed.
 */
export const NO_SAVE = "one-time-code";

/** The screen's heading; focused after every screen change so it is announced. */
export function heading(text) {
  return h("h1", { tabindex: "-1", id: "screen-title" }, text);
}

/**
 * A labelled input (a textarea for type "textarea") with an optional hint and its own
 * error line, wired with aria-describedby and aria-invalid. Returns `{el, input, setError}`.
 */
export function field({ label, hint, type = "text", name, autocomplete, dir, attrs = {} }) {
  const id = uid(name);
  const hintId = hint ? `${id}-hint` : null;
  const errId = `${id}-error`;
  const input = h(type === "textarea" ? "textarea" : "input", {
    id,
    name,
    type: type === "textarea" ? null : type,
    autocomplete: autocomplete ?? "off",
    dir,
    "aria-describedby": [hintId, errId].filter(Boolean).join(" "),
    ...attrs,
  });
  const error = h("p", { id: errId, class: "field-error", hidden: true });
  const setError = (message) => {
    error.textContent = message ?? "";
    error.hidden = !message;
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  };
  input.addEventListener("input", () => setError(null));
  const el = h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    hint ? h("p", { id: hintId, class: "hint" }, hint) : null,
    input,
    error,
  );
  return { el, input, setError };
}

/** A passphrase field for a new passphrase, with a live strength hint. */
export function newPassphraseField(label) {
  const f = field({
    label,
    hint: t("field.passphrase.hint"),
    type: "password",
    name: "new-passphrase",
    autocomplete: NO_SAVE,
    attrs: { spellcheck: "false", autocapitalize: "none" },
  });
  const bar = h("span", { class: "meter-bar s0" });
  const text = h("p", { class: "strength", "aria-live": "polite", id: `${f.input.id}-strength` }, t("strength.0"));
  f.input.addEventListener("input", () => {
    const score = passphraseStrength(f.input.value);
    bar.setAttribute("class", `meter-bar s${score}`);
    const next = t(`strength.${score}`);
    if (text.textContent !== next) text.textContent = next;
  });
  f.el.append(h("div", { class: "meter", "aria-hidden": "true" }, bar), text);
  return f;
}

/** A "show passphrases" switch for every password field of a form. */
export function showPassphrases(form) {
  const id = uid("show");
  const box = h("input", { type: "checkbox", id, class: "check" });
  box.addEventListener("change", () => {
    for (const input of form.querySelectorAll("input[data-secret]")) {
      input.type = box.checked ? "text" : "password";
    }
  });
  return h("div", { class: "check-row" }, box, h("label", { for: id }, t("field.show")));
}

/** Mark password inputs so the "show" switch finds them. */
export function secret(f) {
  f.input.setAttribute("data-secret", "");
  return f;
}

/** Translate an error from the API, the protocol or the page into a message. */
export function errorMessage(error, context = "login") {
  const code = error?.code;
  if (error instanceof ApiError) {
    if (error.status === 0) return t("error.network");
    // Out of space: nothing was stored, and trying again later is all anyone can do.
    if (code === "storage_full") return t("retry.storageFull");
    if (code === "too_many_pending_bodies") return t("retry.busy");
    if (error.status === 429 || code === "rate_limited") return t("error.rateLimited");
    if (code === "bad_credentials") {
      return t({ recover: "error.badRecovery", change: "error.currentWrong", rotate: "error.currentWrong" }[context] ?? "error.badCredentials");
    }
    if (code === "stale_key_version" && context === "rotate") return t("error.rotatedElsewhere");
    if (code === "invite_invalid") return t("error.inviteInvalid");
    if (code === "username_taken") return t("error.usernameTaken");
    const documentErrors = {
      document_too_large: "error.tooLarge",
      quota_exceeded: "error.quota",
      already_granted: "error.alreadyGranted",
      not_found: "error.notFound",
      stale_key_version: "error.keysMismatch",
      must_rotate_keys: "error.mustRotate",
      recipient_must_rotate: "error.recipientMustRotate",
      keys_rotating: "error.recipientMustRotate",
      reseal_set_changed: "error.resealChanged",
      not_owner: "error.attachmentNotOwner",
      missing_attachment_key: "error.attachmentNotOwner",
      unknown_attachment: "error.notFound",
      share_invalid: "shares.badShare",
      share_wrong_account: "shares.wrongAccount",
      no_recovery_shares: "shares.none",
      share_recovery_open: "shares.alreadyOpen",
    };
    if (documentErrors[code]) return t(documentErrors[code]);
    if (error.status >= 500) return t("error.unavailable");
    return t("error.generic");
  }
  const byCode = {
    weak_parameters: "error.weakParameters",
    passphrase_too_short: "error.passphraseShort",
    passphrase_too_long: "error.passphraseLong",
    bad_username: "polish.username.error",
    bad_recovery_key: "error.badRecoveryKey",
    bad_share: "shares.badShare",
    keys_mismatch: "error.keysMismatch",
    bad_signature: "error.keysMismatch",
    bad_public_keys: "error.keysMismatch",
    bad_bundle: "error.bundle",
    bundle_does_not_decrypt: "error.bundle",
    asset_integrity: "error.integrity",
    document_refused: "error.documentRefused",
    transparency: "error.transparency",
    tampered_content: "error.documentRefused",
    file_changed: "error.fileChanged",
    bad_name: "error.badFileName",
    own_keys: "error.ownKeys",
    other_key_version: "error.otherKeyVersion",
    reseal_failed: "error.resealFailed",
    keys_changed: "error.rotatedElsewhere",
    equivocation: "error.equivocation",
    contact_book: "error.contactBook",
    contact_book_rollback: "error.contactBook",
    link_locked: "links.wrong",
  };
  return t(byCode[code] ?? "error.generic");
}

/**
 * Wire a form: validate, show a busy status, disable the submit button while `action`
 * runs, and put any error in the form's alert region (and focus the field at fault).
 */
export function handleSubmit(form, { validate, action, context }) {
  const alert = h("div", { class: "form-error", role: "alert" });
  const busy = h("p", { class: "busy", role: "status" });
  form.prepend(alert);
  form.append(busy);
  form.noValidate = true;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    const problem = validate ? validate() : null;
    if (problem) {
      if (problem.field) {
        problem.field.setError(problem.message);
        problem.field.input.focus();
      } else {
        alert.textContent = problem.message;
      }
      return;
    }
    const buttons = [...form.querySelectorAll("button")];
    for (const b of buttons) b.disabled = true;
    form.setAttribute("aria-busy", "true");
    busy.textContent = t("common.working");
    try {
      await action();
    } catch (error) {
      if (form.isConnected) {
        alert.textContent = errorMessage(error, context);
      }
    } finally {
      busy.textContent = "";
      form.removeAttribute("aria-busy");
      for (const b of buttons) b.disabled = false;
    }
  });
}

/** Check that a field is filled in; return a problem for handleSubmit otherwise. */
export function required(...fields) {
  for (const f of fields) {
    if (!f.input.value.trim()) return { field: f, message: t("error.required") };
  }
  return null;
}

/** Check a new passphrase and its repetition. */
export function checkNewPassphrase(first, second) {
  const value = first.input.value.normalize("NFKC");
  if ([...value].length < 12) return { field: first, message: t("error.passphraseShort") };
  if (new TextEncoder().encode(value).length > 1024) return { field: first, message: t("error.passphraseLong") };
  if (first.input.value !== second.input.value) return { field: second, message: t("error.passphraseMismatch") };
  return null;
}

/** A plain button. */
export function button(text, onClick, kind = "secondary", attrs = {}) {
  return h("button", { type: "button", class: `btn ${kind}`, onClick, ...attrs }, text);
}

/**
 * "This person's keys changed" (§16 rule 3), shown instead of sending or sharing: who,
 * what it may mean, and the explicit step to accept the new keys. `accept(contacts)`
 * records the acceptance; the person then tries again.
 */
export function keyChangeNotice(error, accept) {
  const names = error.contacts.map((c) => c.username).join(", ");
  const box = h("div", { class: "warn-box", role: "alert", "data-key-changed": error.contacts.map((c) => c.userId).join(" ") });
  const ok = button(
    t("keys.accept"),
    async () => {
      ok.disabled = true;
      try {
        await accept(error.contacts);
        box.replaceChildren(h("p", { role: "status", "data-accepted": "true" }, t("keys.accepted", { name: names })));
        box.classList.replace("warn-box", "notice");
        box.removeAttribute("role");
      } catch (failure) {
        ok.disabled = false;
        box.append(h("p", { class: "form-error" }, errorMessage(failure)));
      }
    },
    "primary",
    { "data-accept-keys": "true" },
  );
  box.append(h("p", { dir: "auto" }, t("keys.changed", { name: names })), ok);
  return box;
}
