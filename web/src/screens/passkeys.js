/** Passkey parts of the sign-in and second-factor screens (docs/protocol.md §21.8, §21.9). */

import { h } from "../dom.js";
import { formatDate, t } from "../i18n.js";
import { addPasskey, completeWithPasskey, myPasskeys, passkeyError, passkeysOffered, removePasskey, renamePasskey, signInWithPasskey } from "../passkeys.js";
import { session } from "../session.js";
import { button, field, handleSubmit, required } from "../ui.js";

/** A button running `call`; a refusal or cancel shows beside it. */
function actionButton(text, call, kind, attrs) {
  const status = h("p", { role: "status", class: "passkey-status" });
  const run = button(text, async () => {
    status.textContent = "";
    run.disabled = true;
    try {
      await call();
    } catch (error) {
      status.textContent = passkeyError(error);
    } finally {
      run.disabled = false;
    }
  }, kind, attrs);
  return h("div", { class: "stack" }, run, status);
}

/** "Sign in with a passkey" on the sign-in screen: a PRF passkey alone opens the account. */
export function passkeySignIn(ctx, afterSignIn) {
  if (!passkeysOffered()) return null;
  return actionButton(t("passkey.signIn"), async () => afterSignIn(ctx, await signInWithPasskey()), "secondary", { id: "passkey-sign-in" });
}

/** "Use a passkey" on the second-step screen, when the account has one. */
export function passkeyFactor(ctx, afterSignIn) {
  if (!passkeysOffered() || !session.pendingMethods?.includes("passkey")) return null;
  return actionButton(t("passkey.use"), async () => afterSignIn(ctx, await completeWithPasskey()), "primary", { id: "passkey-factor" });
}

function nameField(value = "") {
  const f = field({ label: t("passkey.name"), name: "passkey-name", autocomplete: "off", attrs: { maxlength: "64" } });
  f.input.value = value;
  return f;
}

function renameForm(ctx, passkey) {
  const name = nameField(passkey.name);
  const form = h("form", { class: "stack passkey-rename" }, name.el, h("button", { type: "submit", class: "btn secondary" }, t("passkey.save")));
  handleSubmit(form, {
    context: "change",
    validate: () => required(name),
    action: async () => {
      await ctx.authenticated(() => renamePasskey(passkey.id, name.input.value));
      ctx.go("factors", { notice: "passkey.saved" });
    },
  });
  return form;
}

function passkeyItem(ctx, passkey) {
  const more = h("div");
  const rename = button(t("passkey.rename"), () => {
    more.replaceChildren(renameForm(ctx, passkey));
    more.querySelector("input")?.focus();
  }, "link");
  const remove = actionButton(t("passkey.remove"), async () => {
    await ctx.authenticated(() => removePasskey(passkey.id));
    ctx.go("factors", { notice: "passkey.removed" });
  }, "secondary", { class: "btn secondary passkey-remove" });
  return h(
    "li",
    { class: "passkey", "data-passkey": passkey.id },
    h("strong", { class: "passkey-name" }, passkey.name),
    h("p", { class: "hint" }, t("passkey.created", { date: formatDate(passkey.created_at) }), passkey.can_unlock ? ` · ${t("passkey.unlocks")}` : ""),
    rename,
    more,
    remove,
  );
}

function addForm(ctx) {
  const name = nameField(t("passkey.title"));
  const form = h("form", { class: "stack", id: "passkey-add" }, name.el, h("button", { type: "submit", class: "btn primary" }, t("passkey.add")));
  handleSubmit(form, {
    context: "change",
    validate: () => required(name),
    action: async () => {
      try {
        await ctx.authenticated(() => addPasskey(name.input.value));
      } catch (error) {
        name.setError(passkeyError(error));
        return;
      }
      ctx.go("factors", { notice: "passkey.added" });
    },
  });
  return form;
}

/** "Add a passkey", opening the form that names it. */
function addStart(ctx) {
  const start = button(t("passkey.add"), () => {
    const form = addForm(ctx);
    start.replaceWith(form);
    form.querySelector("input")?.focus();
  }, "secondary", { id: "passkey-start" });
  return start;
}

/** The passkeys part of the "Second factor" screen: list, add, rename, remove. */
export function passkeySection(ctx) {
  const region = h("div", { "aria-busy": "true" }, h("p", { role: "status" }, t("common.loading")));
  ctx
    .authenticated(() => myPasskeys())
    .then(({ passkeys }) => {
      region.replaceChildren(
        passkeys.length ? h("ul", { class: "plain-list", id: "passkeys" }, passkeys.map((p) => passkeyItem(ctx, p))) : h("p", {}, t("passkey.none")),
        passkeysOffered() ? addStart(ctx) : h("p", {}, t("passkey.unsupported")),
      );
      region.removeAttribute("aria-busy");
    })
    .catch((error) => {
      region.replaceChildren(h("p", { class: "error-box", role: "alert" }, passkeyError(error)));
      region.removeAttribute("aria-busy");
    });
  return h("section", { class: "stack", "aria-labelledby": "passkeys-title" }, h("h2", { id: "passkeys-title" }, t("passkey.title")), h("p", {}, t("passkey.intro")), region);
}
