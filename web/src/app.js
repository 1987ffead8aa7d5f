/**
 * The page: a header with the quick exit and the language picker, and screens rendered
 * into <main> by in-memory routing. The URL stays /app/ on every screen; an invite
 * fragment is read when the page opens or the fragment changes, and removed.
 */

import { ApiError, get } from "./api.js";
import { forgetEverything, onForget } from "./forget.js";
import { h } from "./dom.js";
import { quickExit, installIdleLock, installShiftExit, installTouchExit, NEUTRAL_URL } from "./exit.js";
import { askBeforeLeaving, closeOpen, exitThroughHistory, forgetLanguage, initNavigation, parentScreen, rememberLanguage, rememberedLanguage, trackBarSize, unsavedWork } from "./nav.js";
import { language, languages, onLanguageChange, preferredLanguage, setLanguage, t } from "./i18n.js";
import { admin } from "./screens/admin.js";
import { outcomes } from "./screens/figures.js";
import { inbox, inboxReport } from "./screens/inbox.js";
import * as auth from "./screens/auth.js";
import * as documentScreens from "./screens/documents.js";
import * as duressScreens from "./screens/duress.js";
import { factorSignIn, factors } from "./screens/factors.js";
import * as homeScreens from "./screens/home.js";
import * as intakeScreens from "./screens/intake.js";
import * as keyScreens from "./screens/keys.js";
import * as linkScreens from "./screens/links.js";
import { parseFragment as parseLinkFragment } from "./crypto/links.js";
import * as shareScreens from "./screens/shares.js";
import { forgetSigners } from "./docs.js";
import { forgetSenders, setSessionCheck } from "./chat.js";
import * as messageScreens from "./screens/messages.js";
import { inviteCode, safetyPlan } from "./screens/safety-plan.js";
import { cancelRotation } from "./rotate.js";
import { parseInviteFragment, session } from "./session.js";
import { sodiumReady } from "./sodium.js";

const { releaseBlobs, ...docScreens } = documentScreens;
const { closeStreams, unreadByCase: _unread, ...chatScreens } = messageScreens;
const SCREENS = { ...auth, ...homeScreens, ...docScreens, ...chatScreens, ...keyScreens, ...duressScreens, ...linkScreens, shares: shareScreens.shares, shareRecover: shareScreens.shareRecover, factorSignIn, factors, inviteCode, safetyPlan, admin, outcomes, inbox, inboxReport, ...intakeScreens };
const SIGNED_IN = new Set(["home", "invite", "safety", "change", "rotate", "recoveryShow", "recoveryConfirm", "documents", "history", "conversation", "duress", "links", "shares", "factors", "admin", "inbox", "inboxReport"]);

let current = { name: "login", params: {} };
let main;
let exitLink;
let langLabel;

const ctx = {
  /** Show a screen; screens that need an account fall back to the login screen. */
  go(name, params = {}) {
    if (SIGNED_IN.has(name) && !session.isSignedIn) {
      current = { name: "login", params: { notice: "login.sessionEnded" } };
    } else {
      current = { name, params };
    }
    render(true);
  },
  /** Move focus to the screen's heading. */
  focusTitle() {
    main.querySelector("h1")?.focus();
  },
  /** Run an authenticated call; a missing session locks and returns to the login screen. */
  async authenticated(call) {
    // The sign-in this call belongs to: a 401 for a call started under an earlier sign-in
    // (still in flight when she signed out and in again) must not lock the new one.
    const account = session.account;
    try {
      return await call();
    } catch (error) {
      const stale = account !== session.account;
      if (!stale && error instanceof ApiError && error.status === 401 && error.code === "unauthorized") {
        lock("login.sessionEnded");
      }
      throw error;
    }
  },
  /** Sign out here and everywhere. */
  async logout() {
    try {
      await session.logout();
    } catch {
      /* the keys are gone either way */
    }
    forgetLanguage();
    current = { name: "login", params: { notice: "login.signedOut" } };
    render(true);
  },
};

/** The phone's Back: close what is open, else the parent screen (asking before losing work). */
function back() {
  if (closeOpen(main)) return true;
  const parent = parentScreen(current);
  if (parent === null) return false;
  if (parent === "stay") return true;
  const go = () => ctx.go(parent.name, parent.params);
  const work = unsavedWork(main);
  if (work) askBeforeLeaving(main, work, go);
  else go();
  return true;
}

// What the screens hold, dropped by forget.js's one routine: work under way, decrypted
// files, streams, cached keys, the session's own keys (intake.js registers its own).
for (const forget of [cancelRotation, releaseBlobs, closeStreams, forgetSigners, forgetSenders, () => session.lock()]) onForget(forget);

function lock(noticeKey, signOut = false) {
  forgetEverything({ signOut });
  current = { name: "login", params: { notice: noticeKey } };
  render(true);
}

function render(moveFocus) {
  document.title = t("app.title");
  exitLink.textContent = t("exit.button");
  langLabel.textContent = t("lang.label");
  releaseBlobs();
  closeStreams();
  const screen = SCREENS[current.name](ctx, current.params);
  main.replaceChildren(...[screen].flat().filter(Boolean));
  if (moveFocus) ctx.focusTitle();
}

/** Re-render in the new language, keeping what the person already typed. */
function rerender() {
  const typed = [...main.querySelectorAll("input[name]")]
    .filter((input) => input.type !== "checkbox" && input.value)
    .map((input) => [input.name, input.value]);
  render(false);
  for (const [name, value] of typed) {
    const input = main.querySelector(`input[name="${CSS.escape(name)}"]`);
    if (input) {
      input.value = value;
      input.dispatchEvent(new Event("input"));
    }
  }
}

/**
 * The header and its quick-exit link are in index.html, so they work (as a plain link)
 * before this script has loaded; here the link gets its full behaviour.
 */
function header() {
  const bar = document.getElementById("bar") ?? h("header", { id: "bar", class: "bar" });
  exitLink = document.getElementById("quick-exit");
  if (!exitLink) {
    exitLink = h("a", { id: "quick-exit", class: "exit", href: NEUTRAL_URL, rel: "noreferrer noopener" });
    bar.prepend(exitLink);
  }
  exitLink.addEventListener("click", (event) => {
    event.preventDefault();
    leave();
  });
  const select = h(
    "select",
    { id: "lang", translate: "no" },
    languages().map(({ code, name }) => h("option", { value: code, lang: code }, name)),
  );
  select.value = language();
  // The picker shows the language in use, also when a catalog could not be fetched.
  select.addEventListener("change", () =>
    setLanguage(select.value).then((code) => {
      select.value = code;
      rememberLanguage(code);
    }),
  );
  onLanguageChange((code) => (select.value = code));
  langLabel = h("label", { for: "lang" });
  bar.append(h("div", { class: "lang" }, langLabel, select));
  return bar;
}

function leave() {
  exitThroughHistory(() => quickExit(() => forgetEverything({ signOut: true })));
}

/**
 * Take an invite link's fragment out of the address bar and open the registration screen.
 * The browser has recorded the link in its history by then; an invite code typed into the
 * app ("I have an invite code") never is (docs/threat-model.md, "What the browser keeps").
 */
function takeInvite() {
  const fragment = location.hash;
  const invite = parseInviteFragment(fragment);
  const link = parseLinkFragment(fragment);
  if (fragment || location.search) history.replaceState(history.state, "", location.pathname);
  if (fragment === "#intake") {
    // The intake page's own address (§20): no account, nothing in the fragment to keep.
    current = { name: "intake", params: {} };
    return true;
  }
  if (link) {
    // An outside link (§23): its secret stays in this page's memory only.
    current = { name: "linkOpen", params: { secret: link } };
    return true;
  }
  if (invite === null && !/invite=/.test(fragment)) return false;
  if (session.isSignedIn) {
    // Another account is about to be made here: this one's keys go, and its session ends.
    forgetEverything({ signOut: true });
  }
  current = { name: "register", params: { invite } };
  return true;
}

// How long the first screen waits for the preferred language's catalog before showing
// English; the page switches when the catalog arrives.
const FIRST_LANGUAGE_WAIT_MS = 3000;

async function boot() {
  if (!initNavigation({ back, neutralUrl: NEUTRAL_URL })) return;
  await Promise.race([
    setLanguage(rememberedLanguage() ?? preferredLanguage()),
    new Promise((resolve) => setTimeout(resolve, FIRST_LANGUAGE_WAIT_MS)),
  ]);
  const bar = header();
  main = document.getElementById("main");
  if (!main) {
    main = h("main", { id: "main" });
    document.body.append(bar, main);
  }
  onLanguageChange(rerender);
  trackBarSize(bar);
  // Before the live stream is reopened after a failure: an ended session locks the page.
  setSessionCheck(() => ctx.authenticated(() => get("/account")));
  installShiftExit(leave);
  installIdleLock({
    isActive: () => session.isSignedIn,
    // The lock also ends the server session, so nobody at this device can use it meanwhile.
    onLock: () => lock("login.locked", true),
  });
  installTouchExit(leave);
  takeInvite();
  // An invite link opened in a tab that already shows the page changes only the fragment.
  window.addEventListener("hashchange", () => {
    if (takeInvite()) render(true);
  });
  render(false);
  // Start fetching libsodium now, while the person reads the first screen.
  sodiumReady().catch(() => {});
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
