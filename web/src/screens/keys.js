/** Replacing my keys after a lost or taken phone, or when they were marked unsafe (§14). */

import { h } from "../dom.js";
import { duressWarning } from "../duress.js";
import { t } from "../i18n.js";
import { rotateKeys } from "../rotate.js";
import { session } from "../session.js";
import { NO_SAVE, button, field, handleSubmit, heading, required, secret, showPassphrases } from "../ui.js";

/**
 * "Replace your keys": re-enter the passphrase, watch the progress, then see the new
 * recovery key once. `params.forced` when the organisation marked the keys unsafe.
 */
export function rotate(ctx, params) {
  const forced = params.forced === true || session.account?.mustRotate === true;
  const pass = secret(
    field({
      label: t("field.passphrase"),
      hint: t("rotate.passphraseHint"),
      type: "password",
      name: "passphrase",
      autocomplete: NO_SAVE,
      attrs: { spellcheck: "false" },
    }),
  );
  const progress = h("progress", { max: "1", value: "0", hidden: true, id: "rotate-progress", "aria-label": t("rotate.progressLabel") });
  const status = h("p", { class: "busy", role: "status", id: "rotate-status" });
  const submit = h("button", { type: "submit", class: "btn primary" }, t("rotate.submit"));
  const form = h("form", { class: "stack", "aria-labelledby": "screen-title" }, pass.el);
  form.append(showPassphrases(form), submit, progress, status);
  const show = ({ phase, done, total }) => {
    if (phase === "reseal") {
      progress.hidden = false;
      progress.max = String(Math.max(total, 1));
      progress.value = String(done);
      status.textContent = t("rotate.progress", { done, total });
    } else {
      status.textContent = t(`rotate.phase.${phase}`);
    }
  };
  handleSubmit(form, {
    context: "rotate",
    validate: () => required(pass),
    action: async () => {
      try {
        const formatted = await ctx.authenticated(() => rotateKeys(pass.input.value, { onProgress: show }));
        pass.input.value = "";
        ctx.go("recoveryShow", { formatted, rotated: true });
      } catch (error) {
        // The new keys failed the key-log check: the account was signed out.
        if (error?.code === "own_keys" && !session.isSignedIn) {
          ctx.go("login", { error: "error.ownKeys" });
          return;
        }
        throw error;
      } finally {
        progress.hidden = true;
        status.textContent = "";
      }
    },
  });
  const steps = ["rotate.what.readable", "rotate.what.signedOut", "rotate.what.recovery", "rotate.what.safety"];
  return [
    heading(t("rotate.title")),
    h("p", { class: forced ? "warn-box" : null, "data-forced": forced ? "true" : null }, t(forced ? "rotate.forcedIntro" : "rotate.intro")),
    h("h2", { id: "rotate-what" }, t("rotate.whatTitle")),
    h("ul", { class: "plain-list", "aria-labelledby": "rotate-what" }, steps.map((key) => h("li", {}, t(key)))),
    duressWarning(ctx),
    form,
    h("p", {}, button(t(forced ? "rotate.later" : "common.cancel"), () => ctx.go("home"), "link")),
  ];
}
