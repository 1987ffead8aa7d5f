/**
 * Bidi isolation for text from people and the system inside translated sentences: a Latin
 * username, file name or date in an Arabic line keeps its place instead of pulling the
 * line's order around (Unicode bidi algorithm; <bdi> isolates its content).
 */

import { h } from "./dom.js";
import { t } from "./i18n.js";

/**
 * `value` in its own <bdi>, laid out in its own direction; marked translate="no", since
 * it is data (a name, a file name, a date), not text of the app.
 */
export function isolate(value) {
  return value instanceof Node ? value : h("bdi", { translate: "no" }, String(value));
}

/**
 * The message for `key` as nodes: the translated text as text, each `{name}` value
 * isolated in a <bdi> (a Node value is used as it is).
 */
export function tIsolated(key, vars = {}) {
  const template = t(key);
  const out = [];
  let last = 0;
  for (const match of template.matchAll(/\{(\w+)\}/g)) {
    if (match.index > last) out.push(template.slice(last, match.index));
    out.push(match[1] in vars ? isolate(vars[match[1]]) : match[0]);
    last = match.index + match[0].length;
  }
  if (last < template.length) out.push(template.slice(last));
  return out;
}

/** Parts (strings or nodes) joined by " · ", each isolated from the others. */
export function joinIsolated(parts) {
  const node = (part) => (Array.isArray(part) ? h("span", {}, part) : isolate(part));
  return parts.filter(Boolean).flatMap((part, i) => (i ? [" · ", node(part)] : [node(part)]));
}
