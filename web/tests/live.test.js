/** The page's one shared live stream (src/live.js), driven by a fake EventSource and clock. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay, createLiveStream } from "../src/live.js";

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;

class FakeSource {
  constructor(url) {
    this.url = url;
    this.readyState = CONNECTING;
    this.listeners = new Map();
    this.closed = false;
  }

  addEventListener(kind, fn) {
    if (!this.listeners.has(kind)) this.listeners.set(kind, []);
    this.listeners.get(kind).push(fn);
  }

  close() {
    this.closed = true;
    this.readyState = CLOSED;
  }

  emit(kind, data, id = "") {
    if (kind === "ready" || kind === "resync") this.readyState = OPEN;
    const event = { type: kind, data: data === undefined ? "" : JSON.stringify(data), lastEventId: id };
    for (const fn of this.listeners.get(kind) ?? []) fn(event);
  }

  /** The browser got a non-200 answer (e.g. 503 busy): CLOSED, and it never retries. */
  fail() {
    this.readyState = CLOSED;
    this.emit("error");
  }

  /** The connection dropped: the browser reconnects by itself. */
  drop() {
    this.readyState = CONNECTING;
    this.emit("error");
  }
}

/** A manual clock with setTimeout/setInterval. */
function fakeClock() {
  let now = 0;
  let next = 1;
  const jobs = new Map();
  const clock = {
    get now() {
      return now;
    },
    setTimeout(fn, ms) {
      const id = next++;
      jobs.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout(id) {
      jobs.delete(id);
    },
    setInterval(fn, ms) {
      const id = next++;
      jobs.set(id, { at: now + ms, fn, every: ms });
      return id;
    },
    clearInterval(id) {
      jobs.delete(id);
    },
    pending() {
      return [...jobs.values()].map((j) => j.at - now);
    },
    /** Move time forward, running what falls due, in order. */
    async advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...jobs.entries()].filter(([, j]) => j.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        const [id, job] = due;
        now = job.at;
        if (job.every) job.at += job.every;
        else jobs.delete(id);
        job.fn();
        await flush();
      }
      now = until;
      await flush();
    },
  };
  return clock;
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

function setup(options = {}) {
  const sources = [];
  const clock = fakeClock();
  const checks = [];
  const stream = createLiveStream({
    url: "/api/v1/events",
    open: (url) => {
      const source = new FakeSource(url);
      sources.push(source);
      return source;
    },
    check: async () => {
      checks.push(clock.now);
      if (options.check) await options.check();
    },
    timers: clock,
    random: () => 0,
    ...options.stream,
  });
  return { stream, sources, clock, checks };
}

test("backoff: 2 s, 4 s, 8 s … at most 60 s, less up to a fifth at random", () => {
  const none = [0, 1, 2, 3, 4, 5, 6, 40].map((n) => backoffDelay(n, { random: () => 0 }));
  assert.deepEqual(none, [2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  const most = [0, 1, 5].map((n) => backoffDelay(n, { random: () => 1 }));
  assert.deepEqual(most, [1600, 3200, 48000]);
  for (let n = 0; n < 10; n++) {
    const d = backoffDelay(n);
    assert.ok(d > 0 && d <= 60000);
  }
});

test("one stream for every screen: registering and leaving never opens another", async () => {
  const { stream, sources } = setup();
  assert.equal(sources.length, 0, "opened on first need only");
  for (let i = 0; i < 10; i++) {
    const off = stream.on({ message: () => {} });
    off();
  }
  assert.equal(sources.length, 1);
  assert.equal(stream.opened, 1);
  assert.equal(sources[0].url, "/api/v1/events");
  assert.equal(sources[0].closed, false, "kept open for the next screen");
});

test("events reach every registered handler until it unregisters", () => {
  const { stream, sources } = setup();
  const a = [];
  const b = [];
  const offA = stream.on({ message: (d) => a.push(d), live: (up) => a.push(up) });
  stream.on({ message: (d) => b.push(d), deleted: (d) => b.push(["deleted", d]) });
  const [es] = sources;
  assert.deepEqual(a, [false], "told the state at once");
  es.emit("ready", {}, "c1");
  assert.equal(stream.isLive, true);
  es.emit("message", { conversation_id: "k", message_id: "m1", seq: 1 }, "c2");
  offA();
  es.emit("message", { conversation_id: "k", message_id: "m2", seq: 2 }, "c3");
  es.emit("deleted", { conversation_id: "k", message_id: "m1", seq: 1 }, "c4");
  assert.deepEqual(a, [false, true, { conversation_id: "k", message_id: "m1", seq: 1 }]);
  assert.deepEqual(b, [
    { conversation_id: "k", message_id: "m1", seq: 1 },
    { conversation_id: "k", message_id: "m2", seq: 2 },
    ["deleted", { conversation_id: "k", message_id: "m1", seq: 1 }],
  ]);
  // A handler registered while live hears so at once.
  const c = [];
  stream.on({ live: (up) => c.push(up) });
  assert.deepEqual(c, [true]);
});

test("a throwing handler does not stop the others; bad data is an empty object", () => {
  const { stream, sources } = setup();
  const seen = [];
  stream.on({ message: () => { throw new Error("boom"); } });
  stream.on({ message: (d) => seen.push(d) });
  const [es] = sources;
  for (const fn of es.listeners.get("message")) fn({ data: "{not json", lastEventId: "" });
  assert.deepEqual(seen, [{}]);
});

test("a refused stream (503) is reopened with growing delays, after a check, from the last id", async () => {
  const { stream, sources, clock, checks } = setup();
  const states = [];
  stream.on({ live: (up) => states.push(up) });
  sources[0].emit("ready", {}, "c1");
  sources[0].emit("message", { conversation_id: "k", message_id: "m", seq: 1 }, "c2");
  sources[0].fail();
  assert.equal(stream.isLive, false);
  assert.equal(sources[0].closed, true);
  assert.deepEqual(clock.pending(), [2000]);
  await clock.advance(1999);
  assert.equal(sources.length, 1);
  await clock.advance(1);
  assert.deepEqual(checks, [2000]);
  assert.equal(sources.length, 2);
  assert.equal(sources[1].url, "/api/v1/events?last_event_id=c2");
  // Busy again and again: 4 s, 8 s, …, capped at 60 s.
  const waits = [];
  for (let i = 0; i < 6; i++) {
    sources.at(-1).fail();
    waits.push(clock.pending()[0]);
    await clock.advance(clock.pending()[0]);
  }
  assert.deepEqual(waits, [4000, 8000, 16000, 32000, 60000, 60000]);
  assert.equal(sources.length, 8);
  // Back: live again, and the next failure starts from 2 s.
  sources.at(-1).emit("ready", {}, "c3");
  assert.equal(stream.isLive, true);
  sources.at(-1).fail();
  assert.deepEqual(clock.pending(), [2000]);
  assert.deepEqual(states, [false, true, false, true, false]);
});

test("a dropped connection is left to the browser's own reconnection", async () => {
  const { stream, sources, clock } = setup();
  const states = [];
  stream.on({ live: (up) => states.push(up) });
  sources[0].emit("ready", {}, "c1");
  sources[0].drop();
  assert.equal(stream.isLive, false);
  assert.equal(sources[0].closed, false);
  await clock.advance(120000);
  assert.equal(sources.length, 1, "no second EventSource while the browser reconnects");
  sources[0].emit("ready", {}, "c2");
  assert.deepEqual(states, [false, true, false, true]);
});

test("while the stream is down, pollers are called every 10 s; not while live", async () => {
  const { stream, sources, clock } = setup();
  let polls = 0;
  const off = stream.on({ poll: () => polls++ });
  sources[0].emit("ready", {}, "c1");
  await clock.advance(30000);
  assert.equal(polls, 0);
  sources[0].fail();
  await clock.advance(10000);
  assert.equal(polls, 1);
  // Reopened but not answering yet: still polling.
  await clock.advance(25000);
  assert.equal(polls, 3);
  sources.at(-1).emit("ready", {}, "c2");
  await clock.advance(60000);
  assert.equal(polls, 3);
  sources.at(-1).fail();
  off();
  await clock.advance(60000);
  assert.equal(polls, 3, "a screen that left is not polled");
});

test("`end` closes the stream, tells the handlers, then checks the session before reopening", async () => {
  let sessionGone = false;
  const { stream, sources, clock, checks } = setup({
    check: async () => {
      if (sessionGone) throw new Error("401");
    },
  });
  const ends = [];
  stream.on({ end: () => ends.push("end") });
  sources[0].emit("ready", {}, "c1");
  sources[0].emit("end", {}, "c9");
  assert.deepEqual(ends, ["end"]);
  assert.equal(sources[0].closed, true);
  await clock.advance(2000);
  assert.deepEqual(checks, [2000]);
  assert.equal(sources[1].url, "/api/v1/events?last_event_id=c9", "a passphrase change: same account, new session");
  sessionGone = true;
  sources[1].emit("end", {}, "c10");
  await clock.advance(4000);
  assert.deepEqual(checks, [2000, 6000]);
  assert.equal(sources.length, 2, "the check failed: not reopened");
  assert.deepEqual(clock.pending(), [8000], "tried again later (the app locks the page meanwhile)");
});

test("close() stops everything; the next registration opens a fresh stream", async () => {
  const { stream, sources, clock } = setup();
  const seen = [];
  stream.on({ message: (d) => seen.push(d), poll: () => seen.push("poll") });
  sources[0].emit("ready", {}, "c1");
  sources[0].fail();
  stream.close();
  assert.deepEqual(clock.pending(), [], "no retry and no polling left");
  assert.equal(stream.isOpen, false);
  await clock.advance(120000);
  assert.equal(sources.length, 1);
  // A late event of the closed stream does nothing.
  sources[0].emit("message", { conversation_id: "k", message_id: "m", seq: 1 }, "c2");
  assert.deepEqual(seen, []);
  stream.on({});
  assert.equal(sources.length, 2);
  assert.equal(sources[1].url, "/api/v1/events", "nothing of the previous session is resumed");
});

test("close() while a reopening is being checked: it stays closed", async () => {
  let release;
  const { stream, sources, clock } = setup({ check: () => new Promise((resolve) => (release = resolve)) });
  stream.on({});
  sources[0].fail();
  await clock.advance(2000);
  stream.close();
  release();
  await flush();
  assert.equal(sources.length, 1);
  assert.deepEqual(clock.pending(), []);
});
