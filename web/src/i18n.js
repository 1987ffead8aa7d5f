/**
 * Message catalogs: one JSON file per language in src/i18n/, collected by the build.
 * Adding a language is adding a file with the same keys as en.json and a `_meta` entry
 * naming the language in itself and its writing direction.
 *
 * English is in the bundle; every other catalog is its own content-hashed asset, fetched
 * with Subresource Integrity the first time its language is chosen, so the first screen
 * does not carry every language.
 */

import catalogs from "haven:catalogs";
import { bestLanguage } from "./langtags.js";

export const FALLBACK = "en";
let current = FALLBACK;
const listeners = new Set();

/** Every available language: `[{code, name, dir}]`, English first. */
export function languages() {
  return Object.keys(catalogs)
    .sort((a, b) => (a === FALLBACK ? -1 : b === FALLBACK ? 1 : a.localeCompare(b)))
    .map((code) => ({ code, name: catalogs[code]._meta.name, dir: catalogs[code]._meta.dir }));
}

/** The first of the browser's preferred languages that has a catalog, else English. */
export function preferredLanguage(preferences = navigator.languages ?? [navigator.language]) {
  return bestLanguage(preferences, Object.keys(catalogs), FALLBACK);
}

/** The current language's code. */
export function language() {
  return current;
}

const loading = new Map();
let switches = 0;

/** Fetch a language's catalog (pinned by its SRI) unless it is already here. */
function load(code) {
  const entry = catalogs[code];
  if (!entry.url) return Promise.resolve();
  if (!loading.has(code)) {
    const done = fetch(entry.url, { integrity: entry.sri, credentials: "same-origin" })
      .then((response) => {
        if (!response.ok) throw new Error(`catalog ${code}: HTTP ${response.status}`);
        return response.json();
      })
      .then((catalog) => {
        catalogs[code] = catalog;
      })
      .catch((error) => {
        loading.delete(code);
        throw error;
      });
    loading.set(code, done);
  }
  return loading.get(code);
}

/**
 * Switch language once its catalog is here: `lang` and `dir` on <html>, then tell listeners
 * to re-render. Resolves with the language now in use: the old one if the catalog could not
 * be fetched, or if another switch was asked for meanwhile.
 */
export async function setLanguage(code) {
  const next = catalogs[code] ? code : FALLBACK;
  const ticket = ++switches;
  try {
    await load(next);
  } catch {
    return current;
  }
  if (ticket !== switches) return current;
  current = next;
  const root = document.documentElement;
  root.lang = current;
  root.dir = catalogs[current]._meta.dir;
  for (const listener of listeners) listener(current);
  return current;
}

/** Call `listener(code)` after every language change. */
export function onLanguageChange(listener) {
  listeners.add(listener);
}

/** The message for `key` in the current language, with `{name}` placeholders filled. */
export function t(key, vars = {}) {
  const text = catalogs[current][key] ?? catalogs[FALLBACK][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** The Intl locale of the current language: `_meta.locale` where Intl has no data for the code. */
function intlLocale() {
  return catalogs[current]._meta.locale ?? current;
}

/** A period in the current language, in its largest whole unit ("15 minutes"). */
export function formatDuration(seconds) {
  const [unit, size] = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]].find(([, n]) => seconds % n === 0);
  try {
    return new Intl.NumberFormat(intlLocale(), { style: "unit", unit, unitDisplay: "long" }).format(seconds / size);
  } catch {
    return `${seconds} s`;
  }
}

/** Format a date in the current language. */
export function formatDate(iso) {
  try {
    return new Intl.DateTimeFormat(intlLocale(), { dateStyle: "medium" }).format(new Date(iso));
  } catch {
    return iso;
  }
}

/** Format a moment (an ISO string or milliseconds) as date and time in the current language. */
export function formatDateTime(when, dateStyle = "medium") {
  try {
    return new Intl.DateTimeFormat(intlLocale(), { dateStyle, timeStyle: "short" }).format(new Date(when));
  } catch {
    return String(when);
  }
}
