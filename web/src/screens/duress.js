/** The duress passphrase screen (docs/protocol.md §18): set it, its alert, remove it. */

import { h } from "../dom.js";
import { duressSetting, removeDuress, setDuress, setDuressAlert } from "../duress.js";
import { formatDate, t } from "../i18n.js";
import { button, checkNewPassphrase, errorMessage, field, handleSubmit, heading, newPassphraseField, required, secret, showPassphrases } from "../ui.js";

function currentField() {
  return secret(
    field({ label: t("field.passphrase.current"), type: "password", name: "current", autocomplete: "current-password", attrs: { spellcheck: "false" } }),
  );
}

function alertBox(checked) {
  const box = h("input", { type: "checkbox", id: "duress-alert", class: "check", name: "alert" });
  box.checked = checked;
  const row = h("div", { class: "check-row" }, box, h("label", { for: "duress-alert" }, t("duress.alertLabel")));
  return { row, box, hint: h("p", { class: "hint" }, t("duress.alertHint")) };
}

function setForm(ctx) {
  const current = currentField();
  const pass = secret(newPassphraseField(t("duress.passphrase")));
  const again = secret(
    field({ label: t("field.passphrase.again"), type: "password", name: "passphrase-again", autocomplete: "new-password", attrs: { spellcheck: "false" } }),
  );
  const alert = alertBox(false);
  const form = h("form", { class: "stack", id: "duress-set", "aria-labelledby": "duress-set-title" }, current.el, pass.el, again.el, alert.row, alert.hint);
  form.append(showPassphrases(form), h("button", { type: "submit", class: "btn primary" }, t("duress.submit")));
  handleSubmit(form, {
    context: "change",
    validate: () => {
      const problem = required(current, pass, again) ?? checkNewPassphrase(pass, again);
      if (problem) return problem;
      if (pass.input.value === current.input.value) {
        pass.setError(t("duress.same"));
        return pass.input;
      }
      return null;
    },
    action: async () => {
      try {
        await ctx.authenticated(() => setDuress(current.input.value, pass.input.value, alert.box.checked));
      } finally {
        current.input.value = "";
        pass.input.value = "";
        again.input.value = "";
      }
      ctx.go("duress", { notice: "duress.setDone" });
    },
  });
  return [h("h2", { id: "duress-set-title" }, t("duress.setTitle")), form];
}

function currentSetting(ctx, setting) {
  const alert = alertBox(setting.alert_counsel);
  const status = h("p", { role: "status", class: "busy", id: "duress-alert-status" });
  alert.box.addEventListener("change", async () => {
    alert.box.disabled = true;
    try {
      await ctx.authenticated(() => setDuressAlert(alert.box.checked));
      status.textContent = t(alert.box.checked ? "duress.alertOn" : "duress.alertOff");
    } catch (error) {
      alert.box.checked = !alert.box.checked;
      status.textContent = errorMessage(error);
    }
    alert.box.disabled = false;
  });
  const current = currentField();
  const form = h("form", { class: "stack", id: "duress-remove", "aria-labelledby": "duress-remove-title" }, current.el);
  form.append(h("button", { type: "submit", class: "btn secondary" }, t("duress.remove")));
  handleSubmit(form, {
    context: "change",
    validate: () => required(current),
    action: async () => {
      await ctx.authenticated(() => removeDuress(current.input.value));
      current.input.value = "";
      ctx.go("duress", { notice: "duress.removed" });
    },
  });
  return [
    h("p", { class: "notice", id: "duress-on" }, t("duress.isSet", { date: formatDate(setting.created_at) })),
    alert.row,
    alert.hint,
    status,
    h("h2", { id: "duress-remove-title" }, t("duress.removeTitle")),
    h("p", {}, t("duress.removeIntro")),
    form,
  ];
}

/** "Duress passphrase": what it does and its limits, then set it, or change its alert or remove it. */
export function duress(ctx, params) {
  const region = h("div", { "aria-busy": "true" }, h("p", { role: "status" }, t("common.loading")));
  ctx
    .authenticated(() => duressSetting())
    .then((setting) => {
      region.replaceChildren(...(setting ? currentSetting(ctx, setting) : setForm(ctx)));
      region.removeAttribute("aria-busy");
    })
    .catch((error) => {
      region.replaceChildren(h("p", { class: "error-box", role: "alert" }, errorMessage(error)));
      region.removeAttribute("aria-busy");
    });
  return [
    heading(t("duress.title")),
    params.notice ? h("p", { class: "notice", role: "status" }, t(params.notice)) : null,
    h("p", {}, t("duress.intro")),
    h("ul", { class: "plain-list" }, ["duress.limit.server", "duress.limit.phone", "duress.limit.known", "duress.limit.fresh", "duress.limit.change"].map((key) => h("li", {}, t(key)))),
    region,
    h("p", {}, button(t("common.back"), () => ctx.go("home"), "link")),
  ];
}
