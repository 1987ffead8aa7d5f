#!/usr/bin/env node
/**
 * Build web/dist: content-hashed assets, an index.html with Subresource Integrity on every
 * script and stylesheet, precompressed copies, and the SHA-256/SHA-384 of every file
 * (printed and written to dist/asset-hashes.txt) so an organisation can publish them.
 *
 * The build is deterministic: the same sources and lock file give the same bytes, so
 * anyone can rebuild and compare against published hashes.
 *
 * Tests only: HAVEN_EXTRA_CATALOGS names a folder of further catalogs (the pseudo-locales
 * tests/e2e/pseudo.py writes) and HAVEN_WEB_DIST another output folder, so such a build never
 * replaces web/dist.
 */

import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import * as esbuild from "esbuild";
import { buildVerifier } from "./build-verify.js";

const WEB = join(dirname(fileURLToPath(import.meta.url)), "..");
const SRC = join(WEB, "src");
const EXTRA_CATALOGS = process.env.HAVEN_EXTRA_CATALOGS || null;
const DIST = process.env.HAVEN_WEB_DIST || join(WEB, "dist");
const ASSETS = join(DIST, "assets");
const MODULES = join(WEB, "node_modules");
const BUDGET_FIRST_SCREEN_GZIP = 100 * 1024;
const TARGET = ["es2020"];
const COMPRESSIBLE = new Set([".js", ".css", ".svg", ".webmanifest", ".html", ".json"]);

const sha = (alg, data) => createHash(alg).update(data);
const sri = (data) => `sha384-${sha("sha384", data).digest("base64")}`;
const gzip = (data) => gzipSync(data, { level: 9, mtime: 0 });

/** Write an asset under a name carrying the first 16 hex digits of its SHA-256. */
function emit(stem, ext, data) {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  const name = `${stem}-${sha("sha256", bytes).digest("hex").slice(0, 16)}${ext}`;
  writeFileSync(join(ASSETS, name), bytes);
  return { url: `/assets/${name}`, name, bytes, sri: sri(bytes) };
}

/** Every catalog file: src/i18n/*.json, then the test-only extra folder's. */
function catalogFiles() {
  return [join(SRC, "i18n"), ...(EXTRA_CATALOGS ? [EXTRA_CATALOGS] : [])].flatMap((dir) =>
    readdirSync(dir)
      .filter((f) => f.endsWith(".json"))
      .sort()
      .map((f) => join(dir, f)),
  );
}

/**
 * Emit every catalog but English as its own asset (`<code>-<hash>.json`) and return what the
 * bundle carries: English whole (the fallback and the first screen's default), and for every
 * other language its `_meta` with the asset's URL and SRI, fetched when it is chosen.
 */
function emitCatalogs() {
  const index = {};
  const assets = [];
  for (const file of catalogFiles()) {
    const code = basename(file, ".json");
    const catalog = JSON.parse(readFileSync(file, "utf8"));
    if (code === "en") {
      index[code] = catalog;
      continue;
    }
    const asset = emit(code, ".json", `${JSON.stringify(catalog)}\n`);
    assets.push(asset);
    index[code] = { _meta: catalog._meta, url: asset.url, sri: asset.sri };
  }
  return { index, assets };
}

/** esbuild plugin: `import catalogs from "haven:catalogs"` gives `index` (see emitCatalogs). */
function catalogsPlugin(index) {
  return {
    name: "haven-catalogs",
    setup(build) {
      build.onResolve({ filter: /^haven:catalogs$/ }, () => ({ path: "catalogs", namespace: "haven" }));
      build.onLoad({ filter: /.*/, namespace: "haven" }, () => ({
        contents: `export default ${JSON.stringify(index)};`,
        loader: "js",
      }));
    },
  };
}

async function bundle(entry, define = {}, index = {}) {
  const result = await esbuild.build({
    entryPoints: [join(SRC, entry)],
    bundle: true,
    format: "iife",
    platform: "browser",
    target: TARGET,
    minify: true,
    legalComments: "none",
    sourcemap: false,
    write: false,
    charset: "utf8",
    define,
    plugins: [catalogsPlugin(index)],
    logLevel: "warning",
  });
  return Buffer.from(result.outputFiles[0].contents);
}

async function main() {
  rmSync(DIST, { recursive: true, force: true });
  mkdirSync(ASSETS, { recursive: true });

  // libsodium: the two files of the pinned npm packages, unchanged, joined by a newline,
  // so anyone can reproduce this asset's hash from the registry's tarballs.
  const sodium = emit(
    "sodium",
    ".js",
    Buffer.concat([
      readFileSync(join(MODULES, "libsodium-sumo/dist/modules-sumo/libsodium-sumo.js")),
      Buffer.from("\n"),
      readFileSync(join(MODULES, "libsodium-wrappers-sumo/dist/modules-sumo/libsodium-wrappers.js")),
    ]),
  );
  const worker = emit("kdf", ".js", await bundle("crypto/argon2-worker.js", { SODIUM_URL: JSON.stringify(sodium.url) }));
  // The QR decoder (jsQR) runs in its own worker, fetched only when a scanner starts.
  const scanner = emit("scan", ".js", await bundle("scan-worker.js"));
  // Documents' hashing and encryption run in their own worker, so the page stays responsive.
  const parts = emit("parts", ".js", await bundle("crypto/part-worker.js", { SODIUM_URL: JSON.stringify(sodium.url) }));
  const catalogs = emitCatalogs();
  const app = emit(
    "app",
    ".js",
    await bundle(
      "app.js",
      {
        ARGON2_WORKER_URL: JSON.stringify(worker.url),
        ARGON2_WORKER_SRI: JSON.stringify(worker.sri),
        SCAN_WORKER_URL: JSON.stringify(scanner.url),
        SCAN_WORKER_SRI: JSON.stringify(scanner.sri),
        PART_WORKER_URL: JSON.stringify(parts.url),
        PART_WORKER_SRI: JSON.stringify(parts.sri),
      },
      catalogs.index,
    ),
  );
  const css = emit(
    "app",
    ".css",
    (await esbuild.transform(readFileSync(join(SRC, "styles.css"), "utf8"), { loader: "css", minify: true, target: TARGET })).code,
  );
  const icon = emit("icon", ".svg", readFileSync(join(SRC, "icon.svg")));
  const manifest = emit(
    "manifest",
    ".webmanifest",
    `${JSON.stringify({
      name: "Notes",
      short_name: "Notes",
      start_url: "/app/",
      scope: "/app/",
      display: "browser",
      background_color: "#ffffff",
      theme_color: "#f3f4f6",
      icons: [{ src: icon.url, sizes: "any", type: "image/svg+xml", purpose: "any" }],
    })}\n`,
  );

  const values = {
    app: app.url,
    app_sri: app.sri,
    sodium: sodium.url,
    sodium_sri: sodium.sri,
    css: css.url,
    css_sri: css.sri,
    icon: icon.url,
    manifest: manifest.url,
  };
  const html = readFileSync(join(SRC, "index.html"), "utf8").replace(/\{\{(\w+)\}\}/g, (_, key) => {
    if (!(key in values)) throw new Error(`index.html: unknown placeholder ${key}`);
    return values[key];
  });
  writeFileSync(join(DIST, "index.html"), html);

  // Precompressed copies; the server picks one by Accept-Encoding. SRI covers the decoded bytes.
  for (const name of readdirSync(ASSETS)) {
    if (!COMPRESSIBLE.has(extname(name))) continue;
    const data = readFileSync(join(ASSETS, name));
    writeFileSync(join(ASSETS, `${name}.gz`), gzip(data));
    writeFileSync(
      join(ASSETS, `${name}.br`),
      brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length } }),
    );
  }

  const firstScreen = gzip(app.bytes).length;
  const files = [
    ["index.html", Buffer.from(html)],
    ...[sodium, worker, scanner, parts, app, css, icon, manifest, ...catalogs.assets].map((a) => [`assets/${a.name}`, a.bytes]),
  ];
  const lines = [
    "# Haven web client: hashes of every served file (sha256 hex, sha384 base64 as in SRI).",
    "# path  bytes  gzip-bytes  sha256  sha384",
    ...files.map(
      ([path, data]) =>
        `${path}  ${data.length}  ${gzip(data).length}  sha256:${sha("sha256", data).digest("hex")}  ${sri(data)}`,
    ),
    "",
    `# first-screen JavaScript (app, gzip): ${firstScreen} bytes; budget ${BUDGET_FIRST_SCREEN_GZIP}`,
    `# libsodium (separate, cached immutable): ${sodium.bytes.length} bytes, ${gzip(sodium.bytes).length} gzip`,
    `# Argon2id worker (without libsodium): ${worker.bytes.length} bytes, ${gzip(worker.bytes).length} gzip`,
    `# document worker (without libsodium): ${parts.bytes.length} bytes, ${gzip(parts.bytes).length} gzip`,
    `# catalogs other than English (each fetched when chosen): ${catalogs.assets
      .map((a) => `${a.name.split("-")[0]} ${gzip(a.bytes).length}`)
      .join(", ")} gzip bytes`,
  ];
  // The evidence bundle's offline verifier: one file, not served (the Python client packs it).
  const verifier = await buildVerifier(DIST);
  lines.push(`# verify.html (offline bundle verifier, one file): ${verifier.length} bytes, sha256:${sha("sha256", verifier).digest("hex")}`);
  writeFileSync(join(DIST, "asset-hashes.txt"), `${lines.join("\n")}\n`);
  process.stdout.write(`${lines.join("\n")}\n`);
  if (firstScreen > BUDGET_FIRST_SCREEN_GZIP) {
    throw new Error(`first-screen JavaScript is ${firstScreen} bytes gzip, over the ${BUDGET_FIRST_SCREEN_GZIP} budget`);
  }
}

main().catch((error) => {
  process.stderr.write(`build failed: ${error.stack ?? error}\n`);
  process.exit(1);
});
