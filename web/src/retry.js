/**
 * Waiting out a busy server: a 503 (or a 429 too_many_pending_bodies) that names a wait in
 * Retry-After is tried again after that wait, a bounded number of times, with the page
 * saying so. Only for requests that are safe to repeat byte for byte (a message send
 * carries its message id, an upload part its number).
 */

import { ApiError } from "./api.js";

/** At most this many tries after the first. */
export const RETRY_TIMES = 3;
/** The longest advised wait honoured, in seconds; a longer one is cut to this. */
export const RETRY_MAX_SECONDS = 30;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Seconds from a Retry-After header (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(value, now = Date.now()) {
  if (value === null || value === undefined || value === "") return null;
  const text = String(value).trim();
  if (/^[0-9]{1,9}$/.test(text)) return Number(text);
  if (!/^[A-Za-z]{3}, /.test(text)) return null; // an IMF-fixdate, "Sun, 06 Nov 1994 …"
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/** The wait the server advised for this error, bounded, in seconds; null: do not retry. */
export function advisedWait(error) {
  if (!(error instanceof ApiError)) return null;
  const busy = error.status === 503 || (error.status === 429 && error.code === "too_many_pending_bodies");
  const seconds = busy ? parseRetryAfter(error.retryAfter) : null;
  if (seconds === null) return null;
  return Math.min(RETRY_MAX_SECONDS, Math.max(1, seconds));
}

/**
 * Run `attempt` and, while it fails with an advised wait, run it again after that wait
 * (at most RETRY_TIMES more); `onRetry(seconds, n)` is told before each wait.
 */
export async function withAdvisedRetry(attempt, { onRetry = () => {}, wait = sleep } = {}) {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      const seconds = advisedWait(error);
      if (seconds === null || n > RETRY_TIMES) throw error;
      onRetry(seconds, n);
      await wait(seconds * 1000);
    }
  }
}
