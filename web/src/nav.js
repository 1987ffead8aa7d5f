/**
 * The tab's history and the phone's Back button (docs/protocol.md §19).
 *
 * The app's entry in the tab's history is the *base*; after the first tap or key press one
 * *guard* entry with the same URL is pushed above it. Back from the guard lands on the base
 * (a `popstate` in this document): the app moves to the parent screen or closes what is
 * open and pushes the guard again; on a first screen it goes back once more and leaves.
 * There is never more than one guard, so quick exit only has to step off it before it
 * replaces the entry with the neutral site: nothing of the app is left behind that site.
 *
 * The chosen language rides in `history.state` (kept by the browser across reloads of this
 * entry, gone when quick exit replaces it or the tab closes); no browser storage is used.
 */

import { h } from "./dom.js";
import { t } from "./i18n.js";

const KEY = "haven";
const initial = history.state;
let remembered = typeof initial?.lang === "string" ? initial.lang : null;
let onGuard = false;
let leaving = false;
let onBack = () => false;

function entry(kind) {
  return remembered ? { [KEY]: kind, lang: remembered } : { [KEY]: kind };
}

function navigationType() {
  return performance.getEntriesByType?.("navigation")?.[0]?.type ?? "navigate";
}

function blank() {
  document.documentElement.classList.add("gone");
  document.body.replaceChildren();
  document.title = "";
}

/** Push the guard entry if it is not there (only after a user activation: see init). */
function ensureGuard() {
  if (onGuard || leaving) return;
  // The language rides on the entry in use; the base below the guard keeps none.
  history.replaceState({ [KEY]: "base" }, "");
  history.pushState(entry("guard"), "");
  onGuard = true;
}

/**
 * Set up Back handling; `back()` is called when Back is pressed on the app and returns
 * true when it handled it (the app stays), false to leave. Returns false when this page
 * must not show anything: an entry left by quick exit (then the neutral site replaces it)
 * or the base entry of an earlier load of the app reached with Back (then Back goes on).
 */
export function initNavigation({ back, neutralUrl }) {
  const kind = initial?.[KEY];
  if (kind === "exited") {
    blank();
    location.replace(neutralUrl);
    return false;
  }
  if (kind === "base" && navigationType() === "back_forward") {
    blank();
    // Nothing before it in this tab (Back does not start leaving): the neutral site.
    const fallback = setTimeout(() => location.replace(neutralUrl), 1000);
    window.addEventListener("beforeunload", () => clearTimeout(fallback));
    history.back();
    return false;
  }
  onBack = back;
  // Whatever this entry was, it is now this page's base; the guard follows the first tap
  // or key press, since Chromium skips entries pushed by a page nobody touched.
  history.replaceState(entry("base"), "");
  for (const type of ["pointerup", "keydown", "click"]) {
    document.addEventListener(type, (event) => event.isTrusted && ensureGuard(), { capture: true });
  }
  window.addEventListener("popstate", (event) => {
    if (leaving) return;
    const at = event.state?.[KEY];
    onGuard = at === "guard";
    if (at !== "base") return;
    if (onBack()) {
      ensureGuard();
    } else {
      history.back();
    }
  });
  // A page restored from the back/forward cache after quick exit shows nothing.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && leaving) location.replace(neutralUrl);
  });
  return true;
}

/**
 * Quick exit through the history: blank at once, step off the guard (marking it, so Forward
 * from the neutral site never shows the app), then run `exit`, which replaces the base
 * entry with the neutral site.
 */
export function exitThroughHistory(exit) {
  if (!onGuard || leaving) {
    leaving = true;
    exit();
    return;
  }
  leaving = true;
  blank();
  history.replaceState({ [KEY]: "exited" }, "");
  let done = false;
  const go = () => {
    if (done) return;
    done = true;
    exit();
  };
  window.addEventListener("popstate", go, { once: true });
  setTimeout(go, 500);
  history.back();
}

/** The language chosen in this tab before a reload, or null. */
export function rememberedLanguage() {
  return remembered;
}

/** Keep the chosen language with this history entry, so a reload keeps it. */
export function rememberLanguage(code) {
  remembered = code;
  history.replaceState(entry(onGuard ? "guard" : "base"), "");
}

/** Forget the chosen language (sign-out): the next reload follows the browser again. */
export function forgetLanguage() {
  remembered = null;
  history.replaceState(entry(onGuard ? "guard" : "base"), "");
}

/** The screen Back leads to from `screen`, "stay" to stay put, or null on a first screen. */
export function parentScreen({ name, params }) {
  const home = { name: "home", params: {} };
  switch (name) {
    case "documents":
      return params.from ? { name: "conversation", params: params.from } : home;
    case "history":
    case "links":
      return { name: "documents", params: { caseId: params.caseId } };
    case "conversation":
    case "invite":
    case "safety":
    case "change":
    case "rotate":
    case "admin":
    case "shares":
    case "inbox":
      return home;
    case "inboxReport":
      return { name: "inbox", params: {} };
    case "recover":
    case "shareRecover":
    case "intake":
      return { name: "login", params: {} };
    case "intakeReturn":
      return { name: "intake", params: {} };
    case "recoveryConfirm":
      return { name: "recoveryShow", params: { formatted: params.formatted, rotated: params.rotated } };
    case "intakeConfirm":
      return { name: "intakeReceipt", params: { receipt: params.receipt } };
    case "recoveryShow":
    case "intakeReceipt":
      return "stay";
    default:
      return null;
  }
}

/** What leaving the screen in `root` would lose: an i18n key, or null. */
export function unsavedWork(root) {
  if (root.querySelector("form.upload progress:not([hidden])")) return "nav.loseUpload";
  const draft = root.querySelector("form.compose textarea[name=text]");
  if (draft?.value.trim() || root.querySelector("form.compose input[name=attach]:checked")) return "nav.loseDraft";
  return null;
}

/** Close what is open in `root` (the prompt, a document viewer); true if something was. */
export function closeOpen(root) {
  const prompt = root.querySelector(".nav-prompt");
  if (prompt) {
    prompt.querySelector("[data-nav-stay]").click();
    return true;
  }
  const close = root.querySelector(".viewer:not(:empty) > button:last-child");
  if (close) {
    close.click();
    return true;
  }
  return false;
}

/**
 * Ask before leaving would lose `what` (an i18n key): Stay keeps everything, Leave calls
 * `leave`. Not a modal dialog, so the quick-exit bar stays usable.
 */
export function askBeforeLeaving(root, what, leave) {
  const before = document.activeElement;
  const textId = "nav-prompt-text";
  const close = () => prompt.remove();
  const stay = h("button", { type: "button", class: "btn primary", "data-nav-stay": "" }, t("nav.stay"));
  const go = h("button", { type: "button", class: "btn secondary", "data-nav-leave": "" }, t("nav.leave"));
  const prompt = h(
    "div",
    { class: "warn-box nav-prompt", role: "alertdialog", "aria-labelledby": textId },
    h("p", { id: textId }, t(what)),
    h("div", { class: "actions" }, stay, go),
  );
  stay.addEventListener("click", () => {
    close();
    if (before instanceof HTMLElement && before.isConnected) before.focus();
  });
  go.addEventListener("click", () => {
    close();
    leave();
  });
  const title = root.querySelector("h1");
  if (title) title.after(prompt);
  else root.prepend(prompt);
  stay.focus();
}

/**
 * Keep `--bar-size` on <html> equal to the sticky bar's height, so scroll-padding keeps
 * every focused control below it (WCAG 2.2 SC 2.4.11) even when the bar wraps at 320 px.
 * Set through the CSSOM, which the style-src policy allows (no style attribute is written).
 */
export function trackBarSize(bar) {
  const update = () => document.documentElement.style.setProperty("--bar-size", `${Math.ceil(bar.getBoundingClientRect().height)}px`);
  update();
  if (typeof ResizeObserver === "function") new ResizeObserver(update).observe(bar);
}

/**
 * After an upload: focus the new document's first Share button (one Tab from the next
 * person's), else its row; returns the focused element or null.
 */
export function focusNewDocument(root, id) {
  const row = root.querySelector(`.document[data-id="${CSS.escape(id)}"]`);
  if (!row) return null;
  const target = row.querySelector(".grants button") ?? row;
  target.focus();
  return target;
}
