/**
 * Outside links (docs/protocol.md §23), mirroring vault/client/links.py: the owner makes,
 * lists, approves and revokes links; the recipient, with no account, opens one, checks every
 * document against the key log the open carried, and receives each file in memory.
 * The link secret lives in this page's memory only; nothing goes to any browser storage.
 */

import { get, post, request } from "./api.js";
import { passphraseKeys } from "./crypto/argon2.js";
import * as CP from "./crypto/checkpoint.js";
import * as D from "./crypto/documents.js";
import { b64decode, b64encode } from "./crypto/encoding.js";
import { checkKdfParams, checkPassphraseStrength, newKdfParams } from "./crypto/kdf.js";
import { ProtocolError, verifyPublicRecord } from "./crypto/keys.js";
import * as L from "./crypto/links.js";
import * as KT from "./crypto/transparency.js";
import { trustContacts } from "./contacts.js";
import { downloadDocument } from "./docs.js";
import { witnessPolicy } from "./directory.js";
import { session } from "./session.js";
import { sodiumReady } from "./sodium.js";

const path = (caseId) => `/cases/${encodeURIComponent(caseId)}/links`;

async function keysFor(sodium, secret, passphrase, kdf) {
  const stretched = kdf ? (await passphraseKeys(passphrase, kdf)).authKey : new Uint8Array(0);
  return L.linkKeys(sodium, secret, stretched);
}

/**
 * Make a link to `docs` (opened documents) for `recipient`: {link, url}. Counsel's link to
 * the survivor's documents waits for her approval; her label is sealed to her checked key.
 */
export async function createLink(caseRec, docs, { recipient, expiresAt, maxOpens, passphrase }) {
  const sodium = await sodiumReady();
  const me = session.account;
  if (passphrase) checkPassphraseStrength(passphrase);
  const secret = sodium.randombytes_buf(L.SECRET_BYTES);
  const lookup = L.lookupId(sodium, secret);
  const params = passphrase ? newKdfParams(sodium) : null;
  const kdf = params && { ...params, salt: b64encode(params.salt) };
  const keys = await keysFor(sodium, secret, passphrase, kdf);
  const envelope = L.sealEnvelope(sodium, caseRec.id, docs.map((d) => ({ rawId: d.rawId, fileKey: d.fileKey })), keys, lookup);
  const body = {
    lookup_id: b64encode(lookup),
    token_hash: b64encode(keys.tokenHash),
    envelope: b64encode(envelope),
    document_ids: docs.map((d) => d.id),
    label: b64encode(L.sealLabel(sodium, recipient, me.keys.x25519Public, me.keys.version)),
    expires_at: expiresAt,
    max_opens: maxOpens,
  };
  if (kdf) body.kdf = kdf;
  const survivor = caseRec.members.find((m) => m.role === "survivor");
  if (survivor && survivor.user_id !== me.id) {
    const record = (await trustContacts([survivor]))[survivor.user_id];
    body.survivor_label = b64encode(L.sealLabel(sodium, recipient, record.x25519, record.version));
  }
  const { link } = await post(path(caseRec.id), body);
  return { link, url: `${location.origin}/app/#${L.fragment(secret)}` };
}

/** The links of a case I may see, each with `recipient` opened from my label. */
export async function listLinks(caseId) {
  const sodium = await sodiumReady();
  const keys = session.account.keys;
  const { links } = await get(path(caseId));
  return links.map((link) => {
    let recipient = null;
    try {
      recipient = L.openLabel(sodium, b64decode(link.label), keys);
    } catch {
      recipient = null; // sealed to a key version I no longer hold
    }
    return { ...link, recipient };
  });
}

/** Approve counsel's link (the case's survivor). */
export const approveLink = (id) => post(`/links/${encodeURIComponent(id)}/approve`);

/** Revoke a link, or decline a pending one. */
export const revokeLink = (id) => request("DELETE", `/links/${encodeURIComponent(id)}`);

/** What a link needs before it opens: {kdf} (null: no passphrase); ApiError 404 when gone. */
export async function lookUp(secret) {
  const sodium = await sodiumReady();
  const lookup = b64encode(L.lookupId(sodium, secret));
  const { link } = await get(`/link/${lookup}`);
  if (link.kdf) checkKdfParams(link.kdf);
  return { lookup, kdf: link.kdf, envelope: b64decode(link.envelope) };
}

/** Check the log material of an open (§23.5): the cosigned, signed head it proves keys in. */
function checkedHead(sodium, dir) {
  const logKeys = new Map();
  let previous = null;
  for (const item of dir.log_keys) {
    const publicKey = b64decode(item.public_key);
    if (previous) {
      if (!item.announcement) throw new KT.TransparencyError(`log key ${item.version} was not announced`);
      KT.verifyAnnouncement(sodium, b64decode(previous.public_key), previous.version, item.version, publicKey, b64decode(item.announcement));
    }
    logKeys.set(item.version, publicKey);
    previous = item;
  }
  const policy = witnessPolicy();
  const heads = new Map(dir.heads.map((head) => [head.size, head]));
  let data = heads.get(Math.max(...heads.keys()));
  if (policy.quorum > 0) {
    const witnesses = policy.witnesses.map((v) => CP.parseVerifierKey(sodium, v));
    const logs = [...logKeys.values()].map((pk) => CP.logVerifier(sodium, policy.origin, pk));
    const checked = CP.verifyCosigned(sodium, dir.checkpoint, logs, witnesses, policy.quorum);
    data = heads.get(checked.size);
    if (checked.origin !== policy.origin || !data || data.root !== b64encode(checked.root)) {
      throw new KT.TransparencyError("the signed head differs from the cosigned checkpoint");
    }
  }
  const head = { size: data.size, root: b64decode(data.root), timestampMs: data.timestamp_ms, keyVersion: data.key_version, signature: b64decode(data.signature) };
  if (!logKeys.has(head.keyVersion)) throw new KT.TransparencyError("tree head signed by an unknown log key");
  KT.verifyHead(sodium, head, logKeys.get(head.keyVersion));
  return head;
}

/** The uploader's Ed25519 key of a version: self-signed, in the log, one publish each (§12.5). */
function signerKey(sodium, answer, head, userId, version) {
  const uploader = answer.uploaders.find((u) => u.user_id === userId);
  const key = uploader?.keys.find((k) => k.version === version);
  if (!key) throw new ProtocolError(`the uploader has no key version ${version}`);
  const record = verifyPublicRecord(sodium, key, uploader.username);
  if (key.log_index == null || key.log_index >= head.size) throw new KT.TransparencyError("the uploader's key is not in the witnessed log");
  const entry = KT.encodeEntry({ kind: "publish", userId, version, x25519: record.x25519, ed25519: record.ed25519, signature: record.signature, timestampMs: Number(key.logged_at_ms) });
  const proof = answer.directory.proofs.find((p) => p.index === key.log_index && p.size === head.size);
  if (!proof) throw new KT.TransparencyError("the open carried no inclusion proof");
  KT.verifyInclusion(sodium, KT.leafHash(sodium, entry), key.log_index, head.size, proof.proof.map(b64decode), head.root);
  const current = uploader.keys.find((k) => k.version === uploader.current_version);
  if (!current) throw new KT.TransparencyError("the uploader's current key is missing");
  const now = verifyPublicRecord(sodium, current, uploader.username);
  KT.checkPublishHistory(uploader.entries, { userId, version: now.version, x25519: now.x25519, ed25519: now.ed25519, signature: now.signature });
  return { username: uploader.username, ed25519: record.ed25519 };
}

/**
 * Open a looked-up link (one counted open): every document is verified (signature, key log,
 * commitment, metadata), then each file is fetched and checked chunk by chunk and by SHA-256.
 * Returns {number, files: [{name, size, sha256, uploader, uploadedAt, mimeType, blob}]}.
 */
export async function openLink(secret, found, passphrase, onProgress = () => {}) {
  const sodium = await sodiumReady();
  const keys = await keysFor(sodium, secret, passphrase, found.kdf);
  const contents = L.openEnvelope(sodium, found.envelope, keys, b64decode(found.lookup));
  const answer = await post(`/link/${found.lookup}/open`, { token: b64encode(keys.token) });
  const head = checkedHead(sodium, answer.directory);
  const files = [];
  for (const [i, entry] of contents.files.entries()) {
    const id = b64encode(entry.rawId);
    const data = answer.documents.find((d) => d.id === id);
    if (!data || data.case_id !== contents.caseId) throw new ProtocolError(`document ${id} is missing from the open`);
    const signer = signerKey(sodium, answer, head, data.owner_id, Number(data.owner_key_version));
    const doc = D.openDocumentRecord(sodium, data, null, signer.ed25519, entry.fileKey);
    const source = { url: `/api/v1/link/${found.lookup}/documents/${encodeURIComponent(id)}/content`, headers: { "Haven-Link-Ticket": answer.open.ticket } };
    const blob = await downloadDocument(doc, (f) => onProgress((i + f) / contents.files.length), "save", source);
    files.push({
      id,
      name: doc.info.name,
      size: doc.info.size,
      mimeType: doc.info.mimeType,
      sha256: sodium.to_hex(doc.info.sha256),
      uploader: signer.username,
      uploadedAt: data.finalized_at ?? data.created_at,
      blob,
    });
  }
  return { number: answer.open.number, files };
}
