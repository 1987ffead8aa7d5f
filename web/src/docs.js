/**
 * The document vault as the signed-in account sees it (docs/protocol.md §8), mirroring
 * vault/client/documents.py: streaming upload in parts with automatic resume, verified
 * listing, verified download into memory, grants, revocation, events.
 * Nothing here is written to any browser storage; plaintext lives in memory only.
 */

import { API, ApiError, get, post, request } from "./api.js";
import { b64decode, b64encode } from "./crypto/encoding.js";
import * as D from "./crypto/documents.js";
import { ProtocolError, verifyPublicRecord } from "./crypto/keys.js";
import { session } from "./session.js";
import { checkPinned, trustContacts } from "./contacts.js";
import { verifyLoggedKey } from "./directory.js";
import { PartStream, pipeline, workerAvailable } from "./partstream.js";
import { advisedWait } from "./retry.js";
import { sodiumReady } from "./sodium.js";

/** Part size a phone on weak data uses: the smallest S3 allows (80 chunks, ≈ 5 MiB). */
export const PART_BYTES = D.MIN_PART_BYTES;
export const RETRIES = 6;
export const RETRYABLE = new Set([0, 408, 429, 500, 502, 503, 504]);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function waitOnline(ms) {
  if (navigator.onLine !== false) return sleep(ms);
  return new Promise((resolve) => {
    const done = () => {
      window.removeEventListener("online", done);
      resolve();
    };
    window.addEventListener("online", done);
    setTimeout(done, Math.max(ms, 30000));
  });
}

/** The file key of an upload's document is refused when the file changed (nonce reuse). */
export class FileChanged extends ProtocolError {
  constructor() {
    super("the file is not the one this upload was started with", "file_changed");
  }
}

/**
 * A document that failed a check; named by id. `reason` is the failed check's code:
 * `other_key_version` when its key is sealed to a key version this device does not hold.
 */
export class DocumentRefused extends Error {
  constructor(id, message, reason = null) {
    super(`document ${id} refused: ${message}`);
    this.code = reason === "other_key_version" ? reason : "document_refused";
    this.reason = reason;
    this.documentId = id;
  }
}

const signers = new Map();

async function signerKey(sodium, caseId, userId, version, members) {
  const me = session.account;
  if (userId === me.id && version === me.record.version) return me.record.ed25519;
  const cacheKey = `${me.id}:${userId}:${version}`;
  if (signers.has(cacheKey)) return signers.get(cacheKey);
  const member = members.find((m) => m.user_id === userId);
  if (!member) throw new ProtocolError("the uploader is not a member of the case");
  const { keys } = await get(`/users/${encodeURIComponent(userId)}/keys`);
  const key = keys.find((k) => k.version === version);
  if (!key) throw new ProtocolError(`the uploader has no key version ${version}`);
  const record = verifyPublicRecord(sodium, key, member.username);
  await verifyLoggedKey(userId, key);
  if (userId !== me.id) await checkPinned(userId, version, record.x25519, record.ed25519);
  signers.set(cacheKey, record.ed25519);
  return record.ed25519;
}

/** Forget cached signer keys (at logout or lock). */
export function forgetSigners() {
  signers.clear();
}

/** The raw case record (members with public keys). */
export async function caseRecord(caseId) {
  return (await get(`/cases/${encodeURIComponent(caseId)}`)).case;
}

/** Verify one document record and open its file key and metadata. */
export async function openDocument(data, members) {
  const sodium = await sodiumReady();
  try {
    const signer = await signerKey(sodium, data.case_id, data.owner_id, Number(data.owner_key_version), members);
    return D.openDocumentRecord(sodium, data, session.account.keys, signer);
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new DocumentRefused(data?.id ?? "?", error.message, error.code ?? null);
  }
}

/** Every document of a case I may read: {documents, refused}. */
export async function listDocuments(caseId, members) {
  const { documents } = await get(`/cases/${encodeURIComponent(caseId)}/documents`);
  const out = { documents: [], refused: [] };
  for (const data of documents) {
    try {
      out.documents.push(await openDocument(data, members));
    } catch (error) {
      if (error instanceof DocumentRefused) out.refused.push(error);
      else throw error;
    }
  }
  return out;
}

/** The media type to record for a File: its own when well-formed, else octet-stream. */
export function mimeOf(file) {
  const type = (file.type || "").toLowerCase().split(";")[0].trim();
  return /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/.test(type) && type.length <= 127
    ? type
    : "application/octet-stream";
}

async function readChunk(file, index) {
  const start = index * D.CHUNK_PLAINTEXT_BYTES;
  return new Uint8Array(await file.slice(start, start + D.CHUNK_PLAINTEXT_BYTES).arrayBuffer());
}

/** Plaintext bytes the worker hashes at a time in the SHA-256 pass (64 chunks). */
const HASH_SLICE = 64 * D.CHUNK_PLAINTEXT_BYTES;

/**
 * SHA-256 of a File: in the document worker, a few slices in memory at a time (§8.12);
 * on the page, one chunk at a time, where the browser has no Worker.
 */
export async function hashFile(sodium, file, onProgress) {
  if (!workerAvailable()) return hashFileInPage(sodium, file, onProgress);
  const count = Math.max(1, Math.ceil(file.size / HASH_SLICE));
  const stream = await PartStream.open();
  try {
    await pipeline(
      stream,
      count,
      async (k) => ({
        buffer: await file.slice((k - 1) * HASH_SLICE, k * HASH_SLICE).arrayBuffer(),
        last: k === count,
        body: false,
      }),
      async (k) => onProgress?.(k / count),
    );
    return await stream.finish();
  } finally {
    stream.close();
  }
}

async function hashFileInPage(sodium, file, onProgress) {
  const state = sodium.crypto_hash_sha256_init();
  const n = D.chunkCount(file.size);
  for (let i = 0; i < n; i++) {
    sodium.crypto_hash_sha256_update(state, await readChunk(file, i));
    onProgress?.((i + 1) / n);
  }
  return sodium.crypto_hash_sha256_final(state);
}

/** PUT one part (a Blob, or bytes); progress per byte sent (XHR has upload progress, fetch has not). */
function putPart(partsPath, number, body, onSent) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", `${API}${partsPath}/${number}`);
    xhr.withCredentials = true;
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => onSent(e.loaded);
    xhr.onload = () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data?.error?.code ?? "http_error", data?.error?.message ?? "", xhr.getResponseHeader("Retry-After")));
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "no connection"));
    xhr.ontimeout = xhr.onerror;
    xhr.onabort = xhr.onerror;
    xhr.send(body);
  });
}

/**
 * Encrypt `file` as a stream and send the parts the server has not acknowledged to
 * `${partsPath}/{number}` (a document's, or an intake attachment's). In the document
 * worker, parts after the one uploading are read and encrypted meanwhile (at most AHEAD
 * of them, §8.12); without a Worker, on the page, one part in memory at a time.
 * Returns the SHA-256 of the plaintext read this time.
 */
export async function sendParts(sodium, partsPath, fileKey, header, file, upload, onProgress) {
  if (!workerAvailable()) return sendPartsInPage(sodium, partsPath, fileKey, header, file, upload, onProgress);
  const partBytes = Number(upload.part_size);
  const total = Number(upload.ciphertext_size);
  const acked = new Map(upload.parts.map((p) => [p.number, p.size]));
  const plainPart = (partBytes / D.CHUNK_CIPHERTEXT_BYTES) * D.CHUNK_PLAINTEXT_BYTES;
  const parts = D.partCount(total, partBytes);
  let done = [...acked.values()].reduce((a, b) => a + b, 0);
  onProgress(done / total);
  const stream = await PartStream.open(fileKey, header.subarray(33));
  try {
    const read = async (k) => ({
      buffer: await file.slice((k - 1) * plainPart, k * plainPart).arrayBuffer(),
      last: k === parts,
      body: acked.get(k) !== D.partSize(total, k, partBytes),
    });
    await pipeline(stream, parts, read, async (k, reply) => {
      const size = D.partSize(total, k, partBytes);
      if (reply.size !== size) throw new FileChanged();
      if (!reply.body) return;
      await putPart(partsPath, k, reply.body, (sent) => onProgress((done + sent) / total));
      done += size;
      onProgress(done / total);
    });
    return await stream.finish();
  } finally {
    stream.close();
  }
}

async function sendPartsInPage(sodium, partsPath, fileKey, header, file, upload, onProgress) {
  const partBytes = Number(upload.part_size);
  const total = Number(upload.ciphertext_size);
  const acked = new Map(upload.parts.map((p) => [p.number, p.size]));
  const chunksPerPart = partBytes / D.CHUNK_CIPHERTEXT_BYTES;
  const n = D.chunkCount(file.size);
  const parts = D.partCount(total, partBytes);
  const enc = new D.ContentEncryptor(sodium, fileKey, header.subarray(33));
  const hash = sodium.crypto_hash_sha256_init();
  let done = [...acked.values()].reduce((a, b) => a + b, 0);
  onProgress(done / total);
  for (let k = 1; k <= parts; k++) {
    const size = D.partSize(total, k, partBytes);
    const first = (k - 1) * chunksPerPart;
    const last = Math.min(n, k * chunksPerPart);
    const send = acked.get(k) !== size;
    const body = send ? new Uint8Array(size) : null;
    let at = 0;
    for (let i = first; i < last; i++) {
      const plain = await readChunk(file, i);
      sodium.crypto_hash_sha256_update(hash, plain);
      const c = enc.push(plain, i === n - 1);
      if (body) body.set(c, at);
      at += c.length;
    }
    if (at !== size) throw new FileChanged();
    if (send) {
      await putPart(partsPath, k, body, (sent) => onProgress((done + sent) / total));
      done += size;
      onProgress(done / total);
    }
  }
  return sodium.crypto_hash_sha256_final(hash);
}

async function complete(sodium, caseRec, documentId, fileKey, header, file, info, upload, onProgress, onRetry) {
  let attempt = 0;
  let check = false;
  for (;;) {
    try {
      if (check) {
        const digest = await hashFile(sodium, file);
        if (file.size !== info.size || b64encode(digest) !== b64encode(info.sha256)) throw new FileChanged();
      }
      const sent = await sendParts(sodium, `/documents/${encodeURIComponent(documentId)}/parts`, fileKey, header, file, upload, onProgress);
      if (b64encode(sent) !== b64encode(info.sha256)) throw new FileChanged();
      const { document } = await post(`/documents/${encodeURIComponent(documentId)}/finalize`);
      return openDocument(document, caseRec.members);
    } catch (error) {
      if (!(error instanceof ApiError) || !RETRYABLE.has(error.status)) throw error;
      attempt += 1;
      if (attempt > RETRIES) throw error;
      // A busy server names its wait (Retry-After, bounded); otherwise back off.
      const advised = advisedWait(error);
      onRetry?.(attempt, advised);
      await waitOnline(advised !== null ? advised * 1000 : Math.min(8000, 500 * 2 ** (attempt - 1)));
      try {
        upload = (await get(`/documents/${encodeURIComponent(documentId)}/upload`)).upload;
      } catch (again) {
        if (!(again instanceof ApiError) || !RETRYABLE.has(again.status)) throw again;
        continue;
      }
      if (upload.state === "complete") {
        const { document } = await get(`/documents/${encodeURIComponent(documentId)}`);
        return openDocument(document, caseRec.members);
      }
      check = true;
    }
  }
}

/**
 * Encrypt and upload a File as a stream, one part in memory at a time; resume by itself
 * after a dropped connection (ask what was received, continue from there).
 */
export async function uploadFile(caseRec, file, { docType, expiresOn = null, onProgress = () => {}, onRetry }) {
  const sodium = await sodiumReady();
  const me = session.account;
  onProgress(0, "hash");
  const info = {
    name: file.name,
    mimeType: mimeOf(file),
    size: file.size,
    docType,
    expiresOn: expiresOn || null,
    sha256: await hashFile(sodium, file, (f) => onProgress(f, "hash")),
  };
  D.checkInfo(info);
  const rawId = D.generateDocumentId(sodium);
  const fileKey = D.generateFileKey(sodium);
  const header = new D.ContentEncryptor(sodium, fileKey).header;
  const metadata = D.sealMetadata(sodium, info, fileKey, rawId, caseRec.id, me.id, header);
  const record = {
    documentId: rawId,
    caseId: caseRec.id,
    uploaderId: me.id,
    keyVersion: me.keys.version,
    header,
    ciphertextSize: D.ciphertextSize(file.size),
    metadata,
  };
  const id = b64encode(rawId);
  const body = {
    id,
    key_version: me.keys.version,
    header: b64encode(header),
    metadata: b64encode(metadata),
    signature: b64encode(D.signDocument(sodium, record, me.keys)),
    sealed_key: b64encode(D.sealFileKey(sodium, fileKey, rawId, me.keys.x25519Public, me.keys.version)),
    ciphertext_size: record.ciphertextSize,
    chunk_count: D.chunkCount(file.size),
    part_size: PART_BYTES,
  };
  let upload;
  for (let attempt = 0; ; attempt++) {
    try {
      upload = (await post(`/cases/${encodeURIComponent(caseRec.id)}/documents`, body)).upload;
      break;
    } catch (error) {
      if (error instanceof ApiError && error.code === "document_exists" && attempt > 0) {
        upload = (await get(`/documents/${encodeURIComponent(id)}/upload`)).upload;
        break;
      }
      if (!(error instanceof ApiError) || !RETRYABLE.has(error.status) || attempt >= RETRIES) throw error;
      onRetry?.(attempt + 1);
      await waitOnline(500 * 2 ** attempt);
    }
  }
  try {
    return await complete(sodium, caseRec, id, fileKey, header, file, info, upload, (f) => onProgress(f, "send"), onRetry);
  } finally {
    sodium.memzero(fileKey);
  }
}

/**
 * Download, decrypt chunk by chunk and verify (§8.2: tags, lengths, SHA-256, size) into
 * a Blob held in memory. A dropped connection resumes with a Range request from the
 * last whole chunk that authenticated. `purpose` ("view": shown in the page only; "save":
 * a copy leaves the app) is declared to the server for the owner's history (§8.10).
 */
export async function downloadDocument(doc, onProgress = () => {}, purpose = "save", source = null) {
  if (purpose !== "view" && purpose !== "save") throw new TypeError("purpose is view or save");
  const sodium = await sodiumReady();
  const dec = new D.ContentDecryptor(sodium, doc.fileKey, doc.header);
  const hash = sodium.crypto_hash_sha256_init();
  const pieces = [];
  const total = doc.ciphertextSize;
  let offset = 0;
  let attempt = 0;
  while (offset < total) {
    let response;
    try {
      // `source` ({url, headers}): the same stream from another route (an outside link, §23.5).
      response = await fetch(source?.url ?? `${API}/documents/${encodeURIComponent(doc.id)}/content?purpose=${purpose}`, {
        credentials: "same-origin",
        cache: "no-store",
        redirect: "error",
        headers: { ...source?.headers, ...(offset ? { Range: `bytes=${offset}-` } : {}) },
      });
    } catch {
      response = null;
    }
    if (response && !response.ok) {
      let data = null;
      try {
        data = await response.json();
      } catch {
        data = null;
      }
      const error = new ApiError(response.status, data?.error?.code ?? "http_error", "");
      if (!RETRYABLE.has(response.status)) throw error;
      response = null;
    }
    if (response) {
      const reader = response.body.getReader();
      let buffer = new Uint8Array(0);
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          const joined = new Uint8Array(buffer.length + value.length);
          joined.set(buffer);
          joined.set(value, buffer.length);
          buffer = joined;
          while (buffer.length >= D.CHUNK_CIPHERTEXT_BYTES || (buffer.length > 0 && offset + buffer.length === total)) {
            const size = Math.min(D.CHUNK_CIPHERTEXT_BYTES, buffer.length);
            const plain = dec.pull(buffer.subarray(0, size));
            sodium.crypto_hash_sha256_update(hash, plain);
            pieces.push(plain);
            offset += size;
            buffer = buffer.slice(size);
            onProgress(offset / total);
          }
          if (offset + buffer.length > total) throw new D.TamperedContent("more content than signed");
        }
      } catch (error) {
        if (error instanceof ProtocolError) throw new DocumentRefused(doc.id, error.message);
        /* the connection dropped midway: resume from the last whole chunk */
      }
      if (offset === total) break;
    }
    attempt += 1;
    if (attempt > RETRIES) throw new ApiError(0, "network", "no connection");
    await waitOnline(Math.min(8000, 500 * 2 ** (attempt - 1)));
  }
  try {
    dec.finish();
  } catch (error) {
    throw new DocumentRefused(doc.id, error.message);
  }
  const digest = sodium.crypto_hash_sha256_final(hash);
  if (b64encode(digest) !== b64encode(doc.info.sha256)) throw new DocumentRefused(doc.id, "SHA-256 differs");
  return new Blob(pieces, { type: doc.info.mimeType });
}

/** Share a document with a case member, sealed to their current, self-signed key. */
export async function grantAccess(doc, member, expiresAt = null) {
  const sodium = await sodiumReady();
  // Checked and pinned (§16): a key change not yet accepted stops the share.
  const record = (await trustContacts([member]))[member.user_id];
  const sealed = D.sealFileKey(sodium, doc.fileKey, doc.rawId, record.x25519, record.version);
  const body = { user_id: member.user_id, sealed_key: b64encode(sealed) };
  if (expiresAt) body.expires_at = expiresAt;
  return (await post(`/documents/${encodeURIComponent(doc.id)}/grants`, body)).grant;
}

/** One document by id, verified and opened (a message's attachment). */
export async function fetchDocument(id, members) {
  const { document } = await get(`/documents/${encodeURIComponent(id)}`);
  return openDocument(document, members);
}

/** Delete my document for everyone: the object, its metadata and every sealed key (§8.8). */
export async function deleteDocument(doc) {
  await request("DELETE", `/documents/${encodeURIComponent(doc.id)}`);
}

/** Stop sharing a document with a reader. */
export async function revokeAccess(doc, userId) {
  await request("DELETE", `/documents/${encodeURIComponent(doc.id)}/grants/${encodeURIComponent(userId)}`);
}

/** A case's events (who uploaded, opened, shared what), newest first. */
export async function caseEvents(caseId, limit = 100) {
  return (await get(`/cases/${encodeURIComponent(caseId)}/events?limit=${limit}`)).events;
}

/** The identity documents a T or U visa packet usually needs, and what satisfies each. */
export const VISA_CHECKLIST = [
  { key: "identity", types: ["passport", "national_id"] },
  { key: "birth", types: ["birth_certificate"] },
  { key: "protection", types: ["protective_order", "police_report"] },
  { key: "immigration", types: ["immigration_form", "visa_permit"] },
];

/** Which checklist items are present, and which present documents expire within `days`. */
export function visaChecklist(documents, today = new Date(), days = 90) {
  const now = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate());
  const limit = now + days * 86400000;
  return VISA_CHECKLIST.map((item) => {
    const docs = documents.filter((d) => item.types.includes(d.info.docType));
    const expiring = docs.filter((d) => d.info.expiresOn && Date.parse(`${d.info.expiresOn}T00:00:00Z`) <= limit);
    const expired = docs.filter((d) => d.info.expiresOn && Date.parse(`${d.info.expiresOn}T00:00:00Z`) < now);
    return { key: item.key, present: docs.length > 0, documents: docs, expiring, expired };
  });
}

export { b64decode };
