/**
 * Leaving few traces: the safety-planning screen (always one tap away) and the invite code
 * typed into the app, which, unlike an invite link, never enters the browser's history.
 */

import { h } from "../dom.js";
import { t } from "../i18n.js";
import { parseInviteFragment, session } from "../session.js";
import { button, field, handleSubmit, heading, required } from "../ui.js";

const SECTIONS = [
  ["privateTitle", ["private"]],
  ["passTitle", ["pass"]],
  ["exitTitle", ["exit"]],
  ["leftTitle", ["left"]],
  ["clearTitle", ["chrome", "samsung", "safari", "clearWarn"]],
  ["deviceTitle", ["device"]],
];

/** The button that opens the safety tips; Back returns to `back` ({name, params}). */
export function safetyPlanButton(ctx, back, kind = "link") {
  return button(t("safety.plan.open"), () => ctx.go("safetyPlan", { back }), kind, { "data-safety-plan": "" });
}

/** Short, plain guidance: private window, no saved passphrase, quick exit, what remains, clearing it. */
export function safetyPlan(ctx, params) {
  const back = params.back ?? { name: session.isSignedIn ? "home" : "login", params: {} };
  return [
    heading(t("safety.plan.title")),
    h("p", {}, t("safety.plan.intro")),
    ...SECTIONS.map(([title, texts], i) =>
      h(
        "section",
        { class: "plan", "aria-labelledby": `plan-${i}` },
        h("h2", { id: `plan-${i}` }, t(`safety.plan.${title}`)),
        texts.map((key) => h("p", { "data-plan": key }, t(`safety.plan.${key}`))),
      ),
    ),
    h("p", {}, button(t("common.back"), () => ctx.go(back.name, back.params), "secondary")),
  ];
}

/** The invite token from what was pasted: the bare code, or a whole invite link. */
export function parseInviteCode(text) {
  const value = String(text ?? "").replace(/\s+/g, "");
  const code = value.includes("invite=") ? value.slice(value.lastIndexOf("invite=") + "invite=".length) : value;
  return parseInviteFragment(`#invite=${code}`);
}

/** "I have an invite code": the code goes to the registration screen, never into the URL. */
export function inviteCode(ctx) {
  const code = field({
    label: t("traces.codeField"),
    name: "invite-code",
    dir: "ltr",
    attrs: { autocapitalize: "none", spellcheck: "false", autocorrect: "off", maxlength: "400" },
  });
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "screen-title" },
    code.el,
    h("button", { type: "submit", class: "btn primary" }, t("traces.codeSubmit")),
  );
  handleSubmit(form, {
    validate: () =>
      required(code) ?? (parseInviteCode(code.input.value) === null ? { field: code, message: t("traces.codeBad") } : null),
    action: async () => {
      const invite = parseInviteCode(code.input.value);
      code.input.value = "";
      ctx.go("register", { invite });
    },
  });
  return [
    heading(t("traces.codeTitle")),
    h("p", {}, t("traces.codeIntro")),
    form,
    h("p", {}, button(t("common.back"), () => ctx.go("login"), "link")),
  ];
}
