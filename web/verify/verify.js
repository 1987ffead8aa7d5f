/**
 * The evidence bundle's checks (docs/protocol.md §24.7), as vault/client/verify.py: the same
 * steps, the same part names. Pure: it reads the bundle through `source` and takes libsodium
 * as an argument, so node tests run it on the vector bundle and the page on a picked file.
 *
 * source: { names(): string[], read(path): Promise<Uint8Array>, chunks(path): AsyncIterable<Uint8Array> }
 */

import { parseVerifierKey, logVerifier, verifyCosigned, parseNote, parseBody, verifySignature } from "../src/crypto/checkpoint.js";
import { ContentDecryptor, CHUNK_CIPHERTEXT_BYTES, ciphertextSize, openMetadata, parseContentHeader, fileKeys, verifyDocument } from "../src/crypto/documents.js";
import { ascii, b64decode, bytesEqual, frame, u32, u64, utf8 } from "../src/crypto/encoding.js";
import { verifyPublicRecord } from "../src/crypto/keys.js";
import { encodeEntry, headFromJson, leafHash, verifyAnnouncement, verifyHead, verifyInclusion } from "../src/crypto/transparency.js";

export const FORMAT = "haven-evidence-bundle/1";
export const MANIFEST = "manifest.json";
export const SIGNATURE = "manifest.sig";
const CHECKPOINT = "log/checkpoint.txt";
const HEAD = "log/head.json";
const LOG_KEYS = "log/log-keys.json";
const REPORT = "report.pdf";
const KINDS = [
  ["manifest", [MANIFEST, SIGNATURE]],
  ["checkpoint", ["log/"]],
  ["proof", ["keys/"]],
  ["record", ["records/"]],
  ["event", ["events/"]],
  ["file", ["files/"]],
  ["report", [REPORT]],
  ["verifier", ["verify.html"]],
];

/** The part a path of the bundle belongs to (§24.1). */
export function partKind(path) {
  for (const [kind, prefixes] of KINDS) {
    if (prefixes.some((p) => path === p || (p.endsWith("/") && path.startsWith(p)))) return kind;
  }
  return "manifest";
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Canonical JSON of an audit detail: sorted keys, no spaces, ASCII only (§13). */
export function canonicalDetail(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalDetail).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${canonicalDetail(k)}:${canonicalDetail(value[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** BLAKE2b-256 of an audit entry's framed fields (§13). */
export function auditEntryHash(sodium, e, prevHash) {
  const id = (v) => utf8(v ?? "");
  const data = frame(
    "haven/v1/audit-entry",
    u64(e.seq),
    prevHash,
    ascii(e.kind),
    id(e.actor_id),
    id(e.subject_id),
    id(e.case_id),
    id(e.document_id),
    ascii(canonicalDetail(e.detail)),
    u64(e.created_ms),
  );
  return sodium.crypto_generichash(32, data, null);
}

class Checker {
  constructor(sodium, source) {
    this.sodium = sodium;
    this.source = source;
    this.failures = [];
    this.checked = [];
    this.logKeys = new Map();
    this.tree = null;
    this.keys = new Map();
  }

  fail(path, reason) {
    this.failures.push({ part: partKind(path), path, reason: String(reason?.message ?? reason) });
  }

  failed(path) {
    return this.failures.some((f) => f.path === path);
  }

  async json(path) {
    return JSON.parse(decoder.decode(await this.source.read(path)));
  }

  async manifest() {
    try {
      const data = await this.json(MANIFEST);
      if (!data || data.format !== FORMAT) throw new Error(`not a ${FORMAT} manifest`);
      for (const key of ["case_id", "exporter", "trust", "documents", "parts"]) {
        if (!(key in data)) throw new Error(`the manifest has no ${key}`);
      }
      return data;
    } catch (error) {
      this.fail(MANIFEST, `unreadable: ${error.message}`);
      return null;
    }
  }

  async log(trust) {
    const sodium = this.sodium;
    try {
      let previous = null;
      for (const item of (await this.json(LOG_KEYS)).log_keys) {
        const publicKey = b64decode(item.public_key);
        if (previous) {
          verifyAnnouncement(sodium, b64decode(previous.public_key), previous.version, item.version, publicKey, b64decode(item.announcement));
        }
        this.logKeys.set(item.version, publicKey);
        previous = item;
      }
      if (!this.logKeys.size) throw new Error("no log key");
    } catch (error) {
      this.fail(LOG_KEYS, `log keys do not chain: ${error.message}`);
      this.logKeys.clear();
      return;
    }
    let body;
    try {
      const note = decoder.decode(await this.source.read(CHECKPOINT));
      const logs = [...this.logKeys.values()].map((k) => logVerifier(sodium, trust.origin, k));
      const witnesses = trust.witnesses.map((v) => parseVerifierKey(sodium, v));
      if (trust.quorum) {
        body = verifyCosigned(sodium, note, logs, witnesses, trust.quorum);
      } else {
        const parsed = parseNote(sodium, note);
        body = parseBody(sodium, parsed.text);
        const sig = parsed.signatures.find((s) => logs.some((k) => k.name === s.name && bytesEqual(k.keyHash, s.keyHash)));
        if (!sig) throw new Error("the checkpoint is not signed by the log");
        verifySignature(sodium, parsed.text, sig, logs.find((k) => bytesEqual(k.keyHash, sig.keyHash)));
      }
      if (body.origin !== trust.origin) throw new Error("the checkpoint is of another log");
    } catch (error) {
      this.fail(CHECKPOINT, `checkpoint refused: ${error.message}`);
      return;
    }
    try {
      const data = (await this.json(HEAD)).head;
      const head = headFromJson(data);
      const key = this.logKeys.get(head.keyVersion);
      if (!key) throw new Error("signed by an unknown log key");
      verifyHead(sodium, head, key);
      if (head.size !== body.size || !bytesEqual(head.root, body.root)) throw new Error("the signed head is not the cosigned checkpoint's");
      this.tree = { size: head.size, root: head.root };
    } catch (error) {
      this.fail(HEAD, `tree head refused: ${error.message}`);
      return;
    }
    const by = trust.quorum
      ? `cosigned by ${trust.quorum} of ${trust.witnesses.length} witness(es)`
      : "signed by the log alone (the exporter had no witnesses)";
    this.checked.push(`key log checkpoint at size ${this.tree.size}, ${by}`);
  }

  async key(path) {
    if (this.keys.has(path)) return this.keys.get(path);
    if (this.failed(path) || !this.tree) return null;
    try {
      const data = await this.json(path);
      const record = verifyPublicRecord(this.sodium, data.record, data.username);
      if (data.size !== this.tree.size) throw new Error("the proof is for another tree size");
      const entry = encodeEntry({
        kind: "publish",
        userId: data.user_id,
        version: record.version,
        x25519: record.x25519,
        ed25519: record.ed25519,
        signature: record.signature,
        timestampMs: data.record.logged_at_ms,
      });
      const proof = data.proof.map((p) => b64decode(p));
      verifyInclusion(this.sodium, leafHash(this.sodium, entry), data.record.log_index, this.tree.size, proof, this.tree.root);
      this.keys.set(path, { ed25519: record.ed25519, userId: data.user_id, username: data.username, version: record.version });
      return this.keys.get(path);
    } catch (error) {
      this.fail(path, `key not proven in the log: ${error.message}`);
      return null;
    }
  }

  async signature(manifest, raw) {
    const exporter = manifest.exporter;
    const key = await this.key(exporter.key);
    if (!key) return true;
    try {
      if (key.userId !== exporter.user_id || key.username !== exporter.username) throw new Error("the exporter's key is another account's");
      const signature = b64decode(decoder.decode(await this.source.read(SIGNATURE)));
      const message = frame("haven/v1/evidence-bundle", raw);
      let ok = false;
      try {
        ok = this.sodium.crypto_sign_verify_detached(signature, message, key.ed25519);
      } catch {
        ok = false;
      }
      if (!ok) throw new Error("the exporter's signature does not verify");
    } catch (error) {
      this.fail(SIGNATURE, error.message);
      return false;
    }
    this.checked.push(`manifest signed by ${exporter.username}`);
    return true;
  }

  async sha256(path, onBytes) {
    const sodium = this.sodium;
    const state = sodium.crypto_hash_sha256_init();
    let size = 0;
    for await (const piece of this.source.chunks(path)) {
      sodium.crypto_hash_sha256_update(state, piece);
      size += piece.length;
      onBytes?.(piece.length);
    }
    return { size, digest: hex(sodium.crypto_hash_sha256_final(state)) };
  }

  async hashes(manifest, onBytes) {
    const listed = new Set([MANIFEST, SIGNATURE]);
    const present = new Set(this.source.names());
    for (const part of manifest.parts) {
      listed.add(part.path);
      if (this.failed(part.path)) continue;
      if (!present.has(part.path)) {
        this.fail(part.path, "missing from the bundle");
        continue;
      }
      try {
        const { size, digest } = await this.sha256(part.path, onBytes);
        if (size !== part.size || digest !== part.sha256) this.fail(part.path, "its SHA-256 differs from the manifest's: altered");
      } catch (error) {
        this.fail(part.path, `damaged: ${error.message}`);
      }
    }
    for (const extra of [...present].filter((p) => !listed.has(p)).sort()) {
      this.fail(MANIFEST, `${extra} is in the bundle but not in the manifest`);
    }
    for (const required of [CHECKPOINT, HEAD, LOG_KEYS, REPORT]) {
      if (!listed.has(required)) this.fail(required, "missing from the manifest");
    }
  }

  async document(caseId, content, item) {
    const sodium = this.sodium;
    const path = item.record;
    const key = await this.key(item.uploader_key);
    if (!key || this.failed(path)) return;
    let info, fileKey, header, total;
    try {
      const data = await this.json(path);
      const doc = data.document;
      if (doc.id !== item.id || doc.case_id !== caseId) throw new Error("the record is of another document or case");
      const documentId = b64decode(doc.id);
      header = b64decode(doc.header);
      total = doc.ciphertext_size;
      const record = {
        documentId,
        caseId: doc.case_id,
        uploaderId: doc.owner_id,
        keyVersion: doc.owner_key_version,
        header,
        ciphertextSize: total,
        metadata: b64decode(doc.metadata),
      };
      if (key.userId !== record.uploaderId || key.version !== record.keyVersion) throw new Error("the uploader key given is not the signer's");
      verifyDocument(sodium, record, key.ed25519, b64decode(doc.signature));
      fileKey = b64decode(data.file_key);
      const [commitment] = parseContentHeader(header);
      if (!bytesEqual(commitment, fileKeys(sodium, fileKey).commitment)) throw new Error("the file key is not the one the signed header commits to");
      info = openMetadata(sodium, record.metadata, fileKey, documentId, record.caseId, record.uploaderId, header);
      if (ciphertextSize(info.size) !== total) throw new Error("the signed sizes do not agree");
    } catch (error) {
      this.fail(path, `signed record refused: ${error.message}`);
      return;
    }
    await this.file(item.file, content, info, fileKey, header, total);
    await this.events(item.events, caseId, item.id);
  }

  async file(path, content, info, fileKey, header, total) {
    if (this.failed(path)) return;
    const sodium = this.sodium;
    try {
      const state = sodium.crypto_hash_sha256_init();
      let size = 0;
      const add = (plain) => {
        sodium.crypto_hash_sha256_update(state, plain);
        size += plain.length;
      };
      if (content === "ciphertext") {
        const decryptor = new ContentDecryptor(sodium, fileKey, header);
        let seen = 0;
        let buffer = new Uint8Array(0);
        for await (const piece of this.source.chunks(path)) {
          const joined = new Uint8Array(buffer.length + piece.length);
          joined.set(buffer);
          joined.set(piece, buffer.length);
          buffer = joined;
          while (buffer.length > CHUNK_CIPHERTEXT_BYTES) {
            add(decryptor.pull(buffer.slice(0, CHUNK_CIPHERTEXT_BYTES)));
            seen += CHUNK_CIPHERTEXT_BYTES;
            buffer = buffer.slice(CHUNK_CIPHERTEXT_BYTES);
          }
        }
        if (buffer.length) add(decryptor.pull(buffer));
        seen += buffer.length;
        decryptor.finish();
        if (seen !== total) throw new Error("the ciphertext has another length than signed");
      } else {
        for await (const piece of this.source.chunks(path)) add(piece);
      }
      const digest = sodium.crypto_hash_sha256_final(state);
      if (size !== info.size || !bytesEqual(digest, info.sha256)) throw new Error("its SHA-256 or size is not the one the uploader signed");
      this.checked.push(`file ${path}: SHA-256 ${hex(digest)} as signed`);
    } catch (error) {
      this.fail(path, error.message);
    }
  }

  async events(path, caseId, documentId) {
    if (this.failed(path) || !this.logKeys.size) return;
    const sodium = this.sodium;
    try {
      const data = await this.json(path);
      if (!data.entries.length) throw new Error("no audit entry for this document");
      const chain = new Map();
      for (const entry of [...data.entries, ...data.links]) {
        const prev = b64decode(entry.prev_hash);
        const own = b64decode(entry.hash);
        if (!bytesEqual(auditEntryHash(sodium, entry, prev), own)) throw new Error(`audit entry ${entry.seq} does not hash to its recorded hash`);
        chain.set(entry.seq, { prev, own });
      }
      for (const entry of data.entries) {
        if (entry.document_id !== documentId || entry.case_id !== caseId) throw new Error(`audit entry ${entry.seq} is of another document`);
      }
      const checkpoints = [...data.checkpoints].sort((a, b) => a.seq - b.seq);
      for (const entry of data.entries) {
        const cover = checkpoints.find((c) => c.seq >= entry.seq);
        if (!cover) throw new Error(`audit entry ${entry.seq} is under no checkpoint`);
        for (let s = entry.seq + 1; s <= cover.seq; s += 1) {
          if (!chain.has(s) || !bytesEqual(chain.get(s).prev, chain.get(s - 1).own)) throw new Error(`audit entry ${s} does not follow entry ${s - 1}`);
        }
        const signed = b64decode(cover.hash);
        if (!bytesEqual(chain.get(cover.seq).own, signed)) throw new Error(`audit entry ${cover.seq} differs from its signed checkpoint`);
        const key = this.logKeys.get(cover.key_version);
        if (!key) throw new Error(`the checkpoint at entry ${cover.seq} names an unknown log key`);
        const message = frame("haven/v1/audit-checkpoint", u64(cover.seq), signed, u64(cover.timestamp_ms), u32(cover.key_version));
        if (!sodium.crypto_sign_verify_detached(b64decode(cover.signature), message, key)) {
          throw new Error(`checkpoint at entry ${cover.seq} has a bad signature`);
        }
      }
      this.checked.push(`${data.entries.length} audit entries of ${documentId} under checkpoints`);
    } catch (error) {
      this.fail(path, error.message);
    }
  }
}

/**
 * Check a bundle; resolves with {failures: [{part, path, reason}], checked: [string],
 * manifest}. `onBytes(n)` is told of every n bytes hashed (progress).
 */
export async function verifyBundle(sodium, source, { onBytes } = {}) {
  const checker = new Checker(sodium, source);
  const manifest = await checker.manifest();
  if (!manifest) return { failures: checker.failures, checked: checker.checked, manifest: null };
  try {
    await checker.log(manifest.trust);
    if (await checker.signature(manifest, await source.read(MANIFEST))) {
      await checker.hashes(manifest, onBytes);
      for (const item of manifest.documents) await checker.document(manifest.case_id, manifest.content, item);
    }
  } catch (error) {
    checker.fail(MANIFEST, `malformed: ${error.message}`);
  }
  return { failures: checker.failures, checked: checker.checked, manifest };
}
