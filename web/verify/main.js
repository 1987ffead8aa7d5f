/**
 * verify.html's page: pick a bundle (.zip) or its folder, run verify.js, list the outcome.
 * Everything happens in this page; it makes no request (its CSP allows none). CATALOGS is
 * the bundle.* text of every language, inlined by web/scripts/build-verify.js.
 */

import { concat } from "../src/crypto/encoding.js";
import { verifyBundle } from "./verify.js";

/* global CATALOGS */
const PIECE = 1024 * 1024;

function pickCatalog() {
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (CATALOGS[base]) return [base, CATALOGS[base]];
  }
  return ["en", CATALOGS.en];
}

const [lang, catalog] = pickCatalog();
const t = (key) => catalog[key] ?? CATALOGS.en[key];

async function* blobChunks(blob) {
  for (let at = 0; at < blob.size; at += PIECE) {
    yield new Uint8Array(await blob.slice(at, Math.min(blob.size, at + PIECE)).arrayBuffer());
  }
}

async function* streamChunks(stream) {
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}

async function collect(chunks) {
  const parts = [];
  for await (const piece of chunks) parts.push(piece);
  return concat(...parts);
}

/** A ZIP file's members (stored or deflated; no ZIP64) as a bundle source. */
async function zipSource(file) {
  const tailSize = Math.min(file.size, 65_557);
  const tail = new Uint8Array(await file.slice(file.size - tailSize).arrayBuffer());
  const view = new DataView(tail.buffer);
  let end = -1;
  for (let i = tail.length - 22; i >= 0; i -= 1) {
    if (view.getUint32(i, true) === 0x06054b50) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new Error("not a ZIP file");
  const count = view.getUint16(end + 10, true);
  const cdSize = view.getUint32(end + 12, true);
  const cdOffset = view.getUint32(end + 16, true);
  const cd = new DataView(await file.slice(cdOffset, cdOffset + cdSize).arrayBuffer());
  const names = new TextDecoder("utf-8");
  const members = new Map();
  let at = 0;
  for (let n = 0; n < count; n += 1) {
    if (cd.getUint32(at, true) !== 0x02014b50) throw new Error("damaged ZIP directory");
    const method = cd.getUint16(at + 10, true);
    const compressed = cd.getUint32(at + 20, true);
    const nameLength = cd.getUint16(at + 28, true);
    const skip = nameLength + cd.getUint16(at + 30, true) + cd.getUint16(at + 32, true);
    const local = cd.getUint32(at + 42, true);
    const name = names.decode(new Uint8Array(cd.buffer, at + 46, nameLength));
    if (!name.endsWith("/")) members.set(name, { method, compressed, local });
    at += 46 + skip;
  }
  const body = async (name) => {
    const m = members.get(name);
    if (!m) throw new Error("missing");
    const header = new DataView(await file.slice(m.local, m.local + 30).arrayBuffer());
    if (header.getUint32(0, true) !== 0x04034b50) throw new Error("damaged ZIP member");
    const start = m.local + 30 + header.getUint16(26, true) + header.getUint16(28, true);
    const data = file.slice(start, start + m.compressed);
    if (m.method === 0) return blobChunks(data);
    if (m.method === 8) return streamChunks(data.stream().pipeThrough(new DecompressionStream("deflate-raw")));
    throw new Error(`ZIP method ${m.method} is not supported`);
  };
  return {
    names: () => [...members.keys()],
    chunks: (name) => ({
      async *[Symbol.asyncIterator]() {
        yield* await body(name);
      },
    }),
    read: async (name) => collect(await body(name)),
  };
}

/** The files of a picked folder, named relative to the folder. */
function folderSource(files) {
  const byName = new Map();
  for (const file of files) {
    const path = (file.webkitRelativePath || file.name).split("/").slice(1).join("/") || file.name;
    byName.set(path, file);
  }
  const get = (name) => {
    const file = byName.get(name);
    if (!file) throw new Error("missing");
    return file;
  };
  return {
    names: () => [...byName.keys()],
    chunks: (name) => blobChunks(get(name)),
    read: async (name) => new Uint8Array(await get(name).arrayBuffer()),
  };
}

function item(list, text, className) {
  const li = document.createElement("li");
  li.textContent = text;
  if (className) li.className = className;
  list.append(li);
}

async function run(makeSource) {
  const status = document.getElementById("status");
  const failures = document.getElementById("failures");
  const checked = document.getElementById("checked");
  failures.replaceChildren();
  checked.replaceChildren();
  status.className = "";
  status.textContent = t("bundle.checking");
  await globalThis.sodium.ready;
  let outcome;
  try {
    outcome = await verifyBundle(globalThis.sodium, await makeSource());
  } catch (error) {
    outcome = { failures: [{ part: "manifest", path: "", reason: error.message }], checked: [] };
  }
  const ok = outcome.failures.length === 0;
  status.className = ok ? "ok" : "bad";
  status.textContent = ok ? t("bundle.valid") : t("bundle.invalid");
  for (const f of outcome.failures) item(failures, `${f.part} — ${f.path}: ${f.reason}`, "bad");
  for (const line of outcome.checked) item(checked, line);
  document.getElementById("checked-title").hidden = outcome.checked.length === 0;
}

function start() {
  document.documentElement.lang = lang;
  document.documentElement.dir = catalog._meta?.dir ?? "ltr";
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  document.title = t("bundle.title");
  const zip = document.getElementById("zip");
  const folder = document.getElementById("folder");
  zip.addEventListener("change", () => zip.files.length && run(() => zipSource(zip.files[0])));
  folder.addEventListener("change", () => folder.files.length && run(async () => folderSource([...folder.files])));
}

start();
