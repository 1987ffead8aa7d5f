/** Waiting out a busy server: only an advised, bounded wait, only a bounded number of times. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiError } from "../src/api.js";
import { RETRY_MAX_SECONDS, RETRY_TIMES, advisedWait, parseRetryAfter, withAdvisedRetry } from "../src/retry.js";

test("Retry-After: delta-seconds or an HTTP date; anything else is no advice", () => {
  assert.equal(parseRetryAfter("5"), 5);
  assert.equal(parseRetryAfter(" 0 "), 0);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter(""), null);
  assert.equal(parseRetryAfter("-3"), null);
  assert.equal(parseRetryAfter("soon"), null);
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:07 GMT", now), 7);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 23:00:00 GMT", now), 0);
});

test("only a busy answer with advice is retried, and never longer than the bound", () => {
  assert.equal(advisedWait(new ApiError(503, "database_unavailable", "", "5")), 5);
  assert.equal(advisedWait(new ApiError(503, "database_unavailable", "", "0")), 1);
  assert.equal(advisedWait(new ApiError(503, "unavailable", "", "3600")), RETRY_MAX_SECONDS);
  assert.equal(advisedWait(new ApiError(429, "too_many_pending_bodies", "", "1")), 1);
  assert.equal(advisedWait(new ApiError(503, "unavailable", "")), null);
  assert.equal(advisedWait(new ApiError(429, "rate_limited", "", "60")), null);
  assert.equal(advisedWait(new ApiError(507, "storage_full", "", "5")), null);
  assert.equal(advisedWait(new ApiError(0, "network", "no connection")), null);
  assert.equal(advisedWait(new Error("x")), null);
});

test("withAdvisedRetry waits as advised, tells the page, and gives up after the bound", async () => {
  const waits = [];
  const told = [];
  let calls = 0;
  const result = await withAdvisedRetry(
    async () => {
      calls += 1;
      if (calls < 3) throw new ApiError(503, "limiter_unavailable", "", "2");
      return "sent";
    },
    { onRetry: (seconds) => told.push(seconds), wait: async (ms) => waits.push(ms) },
  );
  assert.equal(result, "sent");
  assert.deepEqual(waits, [2000, 2000]);
  assert.deepEqual(told, [2, 2]);

  calls = 0;
  await assert.rejects(
    withAdvisedRetry(
      async () => {
        calls += 1;
        throw new ApiError(503, "database_unavailable", "", "1");
      },
      { wait: async () => {} },
    ),
    (error) => error.status === 503,
  );
  assert.equal(calls, RETRY_TIMES + 1);

  calls = 0;
  await assert.rejects(
    withAdvisedRetry(
      async () => {
        calls += 1;
        throw new ApiError(507, "storage_full", "");
      },
      { wait: async () => {} },
    ),
    (error) => error.code === "storage_full",
  );
  assert.equal(calls, 1);
});
