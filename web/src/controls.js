/**
 * Form controls that speak the app's language rather than the browser's: a file picker
 * (a labelled button in front of a visually hidden file input) and a date entered as day,
 * month and year boxes with strict parsing (the GOV.UK date-input pattern). The browser's
 * own file and date widgets take their words and date order from the browser's locale,
 * which on a shared or borrowed phone is often not a language the survivor reads.
 */

import { h, uid } from "./dom.js";
import { parseDateParts } from "./dates.js";
import { t } from "./i18n.js";

/**
 * A file picker: `{el, input, button, focus(), clear()}`. `input` is the real
 * `<input type="file">` (visually hidden, out of the tab order); the button opens it and
 * the chosen file's name is announced next to it.
 */
export function filePicker({ label, hint, name = "file" }) {
  const id = uid("file");
  const labelId = `${id}-label`;
  const hintId = `${id}-hint`;
  const chosenId = `${id}-chosen`;
  const input = h("input", { id, name, type: "file", class: "visually-hidden", tabindex: "-1", "aria-hidden": "true" });
  const chosen = h("span", { id: chosenId, class: "file-chosen", dir: "auto", "aria-live": "polite" }, t("polish.file.none"));
  const button = h(
    "button",
    { type: "button", class: "btn secondary small", id: `${id}-button`, "aria-labelledby": `${labelId} ${id}-button`, "aria-describedby": `${chosenId} ${hintId}` },
    t("polish.file.choose"),
  );
  button.addEventListener("click", () => input.click());
  const show = () => {
    const file = input.files?.[0];
    chosen.textContent = file ? t("polish.file.chosen", { name: file.name }) : t("polish.file.none");
  };
  input.addEventListener("change", show);
  const el = h(
    "div",
    { class: "field file-field" },
    h("span", { class: "label", id: labelId }, label),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    h("div", { class: "file-row" }, button, chosen),
    input,
  );
  return {
    el,
    input,
    button,
    focus: () => button.focus(),
    clear: () => {
      input.value = "";
      show();
    },
  };
}

/**
 * A date as three labelled boxes in a fieldset: `{el, focus(), clear(), read()}`;
 * `read()` gives `{value: "YYYY-MM-DD" | null}` or `{error: message}` (and marks the
 * boxes invalid). `future: true` refuses a day before today.
 */
export function dateInput({ legend, hint = null, name, future = false, inline = false }) {
  const id = uid(name);
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  const part = (key, size) => {
    const input = h("input", {
      id: `${id}-${key}`,
      name: `${name}-${key}`,
      type: "text",
      inputmode: "numeric",
      autocomplete: "off",
      spellcheck: "false",
      maxlength: String(size),
      class: `date-${key}`,
      dir: "ltr",
    });
    return { input, el: h("div", { class: "date-part" }, h("label", { for: input.id }, t(`polish.date.${key}`)), input) };
  };
  const parts = [part("day", 2), part("month", 2), part("year", 4)];
  const el = h(
    "fieldset",
    { class: `date-input${inline ? " inline" : ""}`, "aria-describedby": `${hintId} ${errorId}`, "data-date": name },
    h("legend", {}, legend),
    h("p", { class: "hint", id: hintId }, hint ? `${hint} ${t("polish.date.hint")}` : t("polish.date.hint")),
    error,
    h("div", { class: "date-parts" }, parts.map((p) => p.el)),
  );
  const mark = (message) => {
    error.textContent = message ?? "";
    error.hidden = !message;
    for (const p of parts) {
      if (message) p.input.setAttribute("aria-invalid", "true");
      else p.input.removeAttribute("aria-invalid");
    }
  };
  return {
    el,
    focus: () => parts[0].input.focus(),
    clear: () => {
      for (const p of parts) p.input.value = "";
      mark(null);
    },
    read: () => {
      const got = parseDateParts(...parts.map((p) => p.input.value));
      let message = null;
      if (got.invalid) message = t("polish.date.invalid", { label: legend });
      else if (got.iso && future) {
        const today = new Date();
        const local = `${today.getFullYear()}-${String(today.getMonth() + 1).padStart(2, "0")}-${String(today.getDate()).padStart(2, "0")}`;
        if (got.iso < local) message = t("polish.date.past", { label: legend });
      }
      mark(message);
      if (message) {
        parts[0].input.focus();
        return { error: message };
      }
      return { value: got.iso ?? null };
    },
  };
}
