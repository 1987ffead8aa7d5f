/**
 * Build dist/verify.html: the evidence bundle's offline verifier (docs/protocol.md §24.7) as
 * ONE self-contained file — libsodium (the same two pinned files as the app's asset), the
 * verifier's script and style inlined, the bundle.* text of every catalog, and a CSP that
 * allows those inline pieces by hash and no request at all. It works from file://.
 */

import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const WEB = join(dirname(fileURLToPath(import.meta.url)), "..");
const MODULES = join(WEB, "node_modules");
const hash = (text) => `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;

function catalogs() {
  const dir = join(WEB, "src", "i18n");
  const out = {};
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".json")).sort()) {
    const catalog = JSON.parse(readFileSync(join(dir, file), "utf8"));
    const picked = { _meta: { dir: catalog._meta.dir } };
    for (const [key, text] of Object.entries(catalog)) if (key.startsWith("bundle.")) picked[key] = text;
    out[basename(file, ".json")] = picked;
  }
  return out;
}

/** Write verify.html into `dist`; return its bytes. */
export async function buildVerifier(dist) {
  const result = await esbuild.build({
    entryPoints: [join(WEB, "verify", "main.js")],
    bundle: true,
    format: "iife",
    platform: "browser",
    target: ["es2020"],
    minify: true,
    legalComments: "none",
    write: false,
    charset: "utf8",
    define: { CATALOGS: JSON.stringify(catalogs()) },
    logLevel: "warning",
  });
  const script = result.outputFiles[0].text.trim();
  const sodium = [
    readFileSync(join(MODULES, "libsodium-sumo/dist/modules-sumo/libsodium-sumo.js"), "utf8"),
    readFileSync(join(MODULES, "libsodium-wrappers-sumo/dist/modules-sumo/libsodium-wrappers.js"), "utf8"),
  ].join("\n");
  const style = readFileSync(join(WEB, "verify", "verify.css"), "utf8").trim();
  for (const [name, text] of [["libsodium", sodium], ["verifier", script]]) {
    if (/<\/script/i.test(text)) throw new Error(`${name} holds </script and cannot be inlined`);
  }
  const csp = [
    "default-src 'none'",
    `script-src ${hash(sodium)} ${hash(script)} 'wasm-unsafe-eval'`,
    `style-src ${hash(style)}`,
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
  const template = readFileSync(join(WEB, "verify", "verify.html"), "utf8");
  const html = template
    .replace("{{CSP}}", () => csp)
    .replace("{{STYLE}}", () => style)
    .replace("{{SODIUM}}", () => sodium)
    .replace("{{SCRIPT}}", () => script);
  const bytes = Buffer.from(html, "utf8");
  writeFileSync(join(dist, "verify.html"), bytes);
  return bytes;
}
