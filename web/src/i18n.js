/**
 * Message catalogs: one JSON file per language in src/i18n/, collected by the build.
 * Adding a language is adding a file with the same keys as en.json and a `_meta` entry
 * naming the language in itself and its writing direction.
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

/** Switch language: `lang` and `dir` on <html>, then tell listeners to re-render. */
export function setLanguage(code) {
  current = catalogs[code] ? code : FALLBACK;
  const root = document.documentElement;
  root.lang = current;
  root.dir = catalogs[current]._meta.dir;
  for (const listener of listeners) listener(current);
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
