/**
 * Anonymous intake in the page (docs/protocol.md §20), mirroring vault/client/intake.py:
 * check the team's keys through GET /intake/team's bundle, solve the proof of work in
 * slices, submit, come back with the receipt, read and answer. The receipt and its keys
 * live in this module's memory only: never in a request, a URL or browser storage.
 */

import { API, ApiError, get, post, request } from "./api.js";
import { onForget } from "./forget.js";
import { receiptSubkeys } from "./crypto/argon2.js";
import * as D from "./crypto/documents.js";
import { b64decode, b64encode, bytesEqual } from "./crypto/encoding.js";
import * as IN from "./crypto/intake.js";
import { verifyPublicRecord } from "./crypto/keys.js";
import { TransparencyError } from "./crypto/transparency.js";
import { setReader, verifyContactHistory, verifyLoggedKey } from "./directory.js";
import { FileChanged, RETRIES, RETRYABLE, hashFile, mimeOf, sendParts, waitOnline } from "./docs.js";
import { sodiumReady } from "./sodium.js";

// Counters tried between two yields to the page while solving the proof of work.
const POW_SLICE = 4096;

let mine = null; // {keys, reportId, reportKey} of the report this page holds

/**
 * The directory reads a signed-in client makes, answered from the team bundle (as
 * TeamBundle does in the Python client); anything else is refused.
 */
function bundleReader(team) {
  const members = new Map(team.members.map((m) => [m.user_id, m]));
  const head = team.head;
  return async (path) => {
    const [route, query = ""] = path.split("?");
    const params = new URLSearchParams(query);
    if (route === "/directory/log-keys") return { log_keys: team.log_keys };
    if (route === "/directory/checkpoint" && team.checkpoint !== null) return team.checkpoint;
    if (route === "/directory/head" || route === `/directory/heads/${head.size}`) return { head };
    if (route === "/directory/proofs/inclusion" && Number(params.get("size")) === head.size) {
      const member = [...members.values()].find((m) => m.public_keys.log_index === Number(params.get("index")));
      if (member) return { proof: member.inclusion };
    }
    // The head pinned earlier in this page is this one: nothing to prove.
    if (route === "/directory/proofs/consistency" && params.get("from") === params.get("to")) return { proof: [] };
    const user = /^\/users\/([^/]+)\/keys$/.exec(route);
    if (user && members.has(decodeURIComponent(user[1]))) return members.get(decodeURIComponent(user[1])).history;
    throw new TransparencyError(`the intake team's answer lacks ${route}`);
  };
}

/** A member's key record of `version`: self-signature, inclusion and history checked. */
async function memberRecord(team, userId, version) {
  const member = team.members.find((m) => m.user_id === userId);
  const published = member?.history.keys.find((r) => Number(r.version) === version);
  if (!published) throw new TransparencyError(`no key ${version} of ${userId} on the intake team`);
  const record = verifyPublicRecord(await sodiumReady(), published, member.username);
  setReader(bundleReader(team));
  try {
    await verifyLoggedKey(userId, published);
    if (await verifyContactHistory(userId, record)) throw new TransparencyError(`the intake team's answer holds an older key of ${userId}`);
  } finally {
    setReader(null);
  }
  return record;
}

/** Fetch the team and check every member's current keys; {team, records: [[id, record]]}. */
async function checkedTeam() {
  const team = await get("/intake/team");
  if (!team.members.length) throw new TransparencyError("the intake team is empty");
  const records = [];
  for (const m of team.members) records.push([m.user_id, await memberRecord(team, m.user_id, Number(m.public_keys.version))]);
  return { team, records };
}

/** A fresh challenge and its solution, yielding to the page between slices. */
async function proof(sodium) {
  const answer = await post("/intake/challenges");
  const challenge = b64decode(answer.challenge);
  for (let start = 0; ; start += POW_SLICE) {
    const nonce = IN.solveProof(sodium, challenge, Number(answer.difficulty), start, POW_SLICE);
    if (nonce) return { challenge: answer.challenge, nonce: b64encode(nonce) };
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** The receipt's keys, Argon2id in the worker. */
async function keysOf(sodium, entropy) {
  const { authKey: boxSeed, wrapKey: signSeed } = await receiptSubkeys(entropy, IN.receiptSalt(sodium));
  return IN.receiptKeyPairs(sodium, boxSeed, signSeed);
}

function entry(sodium, plaintext) {
  const id = sodium.randombytes_buf(IN.ID_BYTES);
  const blob = IN.sealEntry(sodium, mine.reportKey, mine.reportId, id, IN.REPORTER, plaintext);
  const signed = IN.entrySigned(mine.reportId, id, IN.REPORTER, 0, blob);
  const signature = sodium.crypto_sign_detached(signed, mine.keys.signSecret);
  return { id: b64encode(id), ciphertext: b64encode(blob), signature: b64encode(signature) };
}

/**
 * Encrypt a report ({text, language, contactWay, contactTime, danger}) to the checked
 * team and send it with a solved proof; the receipt (twelve words) to show once.
 */
export async function submitReport(report) {
  const sodium = await sodiumReady();
  const { records } = await checkedTeam();
  const plaintext = IN.reportPlaintext(report);
  const entropy = sodium.randombytes_buf(16);
  const receipt = IN.receiptWords(sodium, entropy);
  const keys = await keysOf(sodium, entropy);
  const reportId = sodium.randombytes_buf(IN.ID_BYTES);
  const reportKey = sodium.randombytes_buf(32);
  mine = { keys, reportId, reportKey };
  const body = {
    id: b64encode(reportId),
    box_public_key: b64encode(keys.boxPublic),
    sign_public_key: b64encode(keys.signPublic),
    reporter_key: b64encode(IN.sealReportKey(sodium, reportId, reportKey, 0, keys.boxPublic)),
    team_keys: records.map(([userId, r]) => ({
      user_id: userId,
      sealed_key: b64encode(IN.sealReportKey(sodium, reportId, reportKey, r.version, r.x25519)),
    })),
    entry: entry(sodium, plaintext),
    proof: await proof(sodium),
  };
  await post("/intake/reports", body);
  return receipt;
}

/** Check a typed receipt; throws IN.ReceiptError before any work or request. */
export async function checkReceipt(text) {
  IN.receiptEntropy(await sodiumReady(), text);
}

/** Open an intake session with the receipt alone; the decrypted thread. */
export async function comeBack(text) {
  const sodium = await sodiumReady();
  return openSession(sodium, await keysOf(sodium, IN.receiptEntropy(sodium, text)));
}

/** Sign a fresh challenge with the receipt's keys: a new intake session, the thread. */
async function openSession(sodium, keys) {
  const { challenge } = await post("/intake/challenges");
  const signed = IN.sessionSigned(b64decode(challenge), keys.lookup);
  const answer = await post("/intake/session", {
    lookup: b64encode(keys.lookup),
    challenge,
    signature: b64encode(sodium.crypto_sign_detached(signed, keys.signSecret)),
  });
  mine = { keys, reportId: null, reportKey: null };
  return openThread(sodium, answer.report);
}

/** The thread as it is now. */
export async function thread() {
  const { report } = await get("/intake/session/report");
  return openThread(await sodiumReady(), report);
}

/** Add a message to her report. */
export async function addMessage(text) {
  const sodium = await sodiumReady();
  await post("/intake/session/entries", entry(sodium, IN.messagePlaintext(text)));
}

async function raw(method, path, body) {
  let response;
  try {
    response = await fetch(API + path, {
      method,
      body,
      credentials: "same-origin",
      cache: "no-store",
      redirect: "error",
      headers: body ? { "Content-Type": "application/octet-stream" } : {},
    });
  } catch {
    throw new ApiError(0, "network", "no connection");
  }
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    throw new ApiError(response.status, data?.error?.code ?? "http_error", data?.error?.message ?? "");
  }
  return response;
}

/**
 * Encrypt a File as a stream (§20.11: a fresh file key, the stream header derived from it and
 * the attachment id, so a resumed upload pushes the same bytes), one part in memory at a time;
 * a dropped connection or a busy server resumes from the parts the server holds; finalize,
 * and add the entry that names it.
 */
export async function attachFile(file) {
  const sodium = await sodiumReady();
  const sha256 = await hashFile(sodium, file);
  const id = sodium.randombytes_buf(IN.ID_BYTES);
  const fileKey = sodium.randombytes_buf(D.KEY_BYTES);
  const { header } = new D.ContentEncryptor(sodium, fileKey, IN.attachmentStreamHeader(sodium, fileKey, id));
  const path = `/intake/session/attachments/${b64encode(id)}`;
  const body = { id: b64encode(id), ciphertext_size: D.ciphertextSize(file.size), chunk_count: D.chunkCount(file.size), part_size: D.PART_BYTES };
  let { upload } = await post("/intake/session/attachments", body);
  for (let attempt = 1; ; attempt++) {
    try {
      const sent = await sendParts(sodium, `${path}/parts`, fileKey, header, file, upload, () => {});
      if (!bytesEqual(sent, sha256)) throw new FileChanged();
      break;
    } catch (error) {
      if (!(error instanceof ApiError) || !RETRYABLE.has(error.status) || attempt > RETRIES) throw error;
      await waitOnline(Math.min(8000, 500 * 2 ** (attempt - 1)));
      upload = (await get(path).catch(() => ({ upload }))).upload;
    }
  }
  await post(`${path}/finalize`);
  const att = { id, fileKey, header, name: file.name, mimeType: mimeOf(file), size: file.size, sha256 };
  await post("/intake/session/entries", entry(sodium, IN.attachmentPlaintext(att)));
}

/** Download an attachment of her report; its bytes, decrypted and checked (§20.11). */
export const fetchAttachment = (att) => downloadAttachment(`/intake/session/attachments/${b64encode(att.id)}/content`, att);

/** An attachment's content from `path` (hers, or the team's route), decrypted and checked. */
export async function downloadAttachment(path, att) {
  const sodium = await sodiumReady();
  const response = await raw("GET", path);
  const data = D.decryptContent(sodium, att.fileKey, att.header, new Uint8Array(await response.arrayBuffer()));
  if (data.length !== att.size || !bytesEqual(sodium.crypto_hash_sha256(data), att.sha256)) {
    throw new D.TamperedContent("the attachment is not the file its entry names");
  }
  return data;
}

/** Whether this page holds a receipt's keys (she may move her report into a case). */
export const holdsReport = () => mine !== null;

/** One entry as the text of a case message (§20.10), as transcript_line in the Python client. */
export function transcriptLine(e, names) {
  const who = e.authorId === null ? "reporter" : (names[e.authorId] ?? e.authorId);
  const head = `[intake #${e.seq}, ${who}]`;
  if (e.attachment) return `${head} attached ${e.attachment.name} (${e.attachment.size} bytes)`;
  if (e.report) {
    const r = e.report;
    const or = (v) => v || "-";
    return `${head} ${r.text}\nlanguage: ${or(r.language)}; contact: ${or(r.contactWay)} (${or(r.contactTime)}); in danger now: ${r.danger}`;
  }
  return `${head} ${e.text}`;
}

/**
 * On her consent, signed in to her new account (§20.10): open a new intake session with the
 * keys this page holds (signing in ended the old one), re-send every entry oldest first as a
 * message of her case's conversation (attachments as case documents), then withdraw the
 * report (crypto-shredded). `send(text, file|null)` sends one message in the case.
 */
export async function moveReport(send) {
  if (mine === null) throw new TransparencyError("no report is open in this page");
  const sodium = await sodiumReady();
  const entries = await openSession(sodium, mine.keys);
  const names = Object.fromEntries((await get("/intake/team")).members.map((m) => [m.user_id, m.username]));
  for (const e of entries) {
    const file = e.attachment ? new File([await fetchAttachment(e.attachment)], e.attachment.name, { type: e.attachment.mimeType }) : null;
    await send(transcriptLine(e, names), file);
  }
  await request("DELETE", "/intake/session/report");
  mine = null;
}

// Quick exit, lock: the receipt's keys and the report key go with everything else; the
// routine also ends the intake session on the server (forget.js).
onForget(() => {
  mine = null;
});

/** Verify and decrypt every entry: [{seq, mine, report?|text?|attachment?}]. */
async function openThread(sodium, report) {
  const rid = b64decode(report.id);
  mine.reportId = rid;
  mine.reportKey = IN.openReportKey(sodium, b64decode(report.sealed_key), rid, 0, mine.keys.boxPublic, mine.keys.boxSecret);
  const out = [];
  let team = null; // fetched once a reply needs a member's key
  for (const item of report.entries) {
    const author = item.author_id ?? IN.REPORTER;
    const version = Number(item.key_version);
    let key;
    if (item.author_id === null) key = b64decode(report.sign_public_key);
    else {
      team ??= await get("/intake/team");
      key = (await memberRecord(team, author, version)).ed25519;
    }
    const eid = b64decode(item.id);
    const blob = b64decode(item.ciphertext);
    const signed = IN.entrySigned(rid, eid, author, version, blob);
    if (!sodium.crypto_sign_verify_detached(b64decode(item.signature), signed, key)) {
      throw new TransparencyError(`entry ${item.seq} is not signed by its author`);
    }
    const content = IN.openEntry(sodium, mine.reportKey, rid, eid, author, blob);
    if ((item.seq === 1) !== Boolean(content.report)) throw new TransparencyError("only the first entry is the report");
    out.push({ seq: item.seq, mine: item.author_id === null, authorId: item.author_id, ...content });
  }
  return out;
}
