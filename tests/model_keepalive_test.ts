import assert from "node:assert/strict";
import { assertEnvRefused } from "./helpers/env.ts";
import { sleep } from "../dev/_async.ts";
import { readEnv } from "../lib/config/env.ts";
import { startIdleClosingServer } from "./helpers/idle_closing_server.ts";
import { post, waitFor } from "./helpers/http.ts";
import { envelope, type Running, startWorker } from "./helpers/worker.ts";

// The model server closes a connection idle for SERVER_IDLE_MS (uvicorn's
// 5 s scaled down); the worker drops pooled ones after POOL_IDLE_SECONDS.
// With the pool's idle limit above the server's (90 s), the first test
// gets 502s: fetch no longer resends, so a request written as the server
// closes is lost.
const SERVER_IDLE_MS = 600;
const POOL_IDLE_SECONDS = "0.3";

async function withWorker(
  modelServerUrl: string,
  fn: (w: Running) => Promise<void>,
): Promise<void> {
  const w = await startWorker({
    modelServerUrl,
    handlers: [{ route: "/work", allowParallelRequests: true }],
  }, { EDGEWORKER_MODEL_IDLE_SECONDS: POOL_IDLE_SECONDS });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    await fn(w);
  } finally {
    await w.shutdown();
    await Deno.remove(w.dir, { recursive: true });
  }
}

Deno.test("requests that come as the model server closes its idle connections: no 502 in 20, each request reaches the model once", async () => {
  await using model = startIdleClosingServer({ idleMs: SERVER_IDLE_MS });
  await withWorker(model.url, async (w) => {
    const base = `http://127.0.0.1:${w.port}`;
    const statuses: number[] = [];
    // Just past the server's idle close, and right on it (the race).
    const gaps = [650, 700, 600, 590, 610, 605, 595, 600, 620, 580];
    for (let i = 0; i < 20; i++) {
      await sleep(gaps[i % gaps.length]);
      const res = await post(base, "/work", envelope({ i }));
      await res.body?.cancel();
      statuses.push(res.status);
    }
    assert.deepEqual(statuses, Array(20).fill(200));
    assert.equal(model.arrivals, 20);
    // No request went on a connection idle past the pool's limit: each came
    // on a fresh one. (Whether the server's idle close or the pool's reaper
    // shuts an unused one first is timing, not something a client sees.)
    assert.equal(model.connections, 20);
  });
});

Deno.test("requests close together share a pooled connection", async () => {
  await using model = startIdleClosingServer({ idleMs: SERVER_IDLE_MS });
  await withWorker(model.url, async (w) => {
    const base = `http://127.0.0.1:${w.port}`;
    for (let i = 0; i < 5; i++) {
      const res = await post(base, "/work", envelope({ i }));
      assert.equal(res.status, 200);
      await res.body?.cancel();
      await sleep(50);
    }
    assert.equal(model.arrivals, 5);
    assert.equal(model.connections, 1);
  });
});

Deno.test("a request the model server takes on a reused connection and drops unanswered is sent once: 502, never resent", async () => {
  // Each connection: one answer, then the next request is read and dropped.
  await using model = startIdleClosingServer({
    idleMs: 60_000,
    dropAfter: 1,
  });
  await withWorker(model.url, async (w) => {
    const base = `http://127.0.0.1:${w.port}`;
    const first = await post(base, "/work", envelope({ i: 0 }));
    assert.equal(first.status, 200);
    await first.body?.cancel();
    const second = await post(base, "/work", envelope({ i: 1 }));
    const body = await second.json();
    assert.equal(second.status, 502);
    assert.match(body.error, /model server unreachable: .*closed/);
    // Deno's fetch resends a string body once in this case, so the model
    // would have run it twice (3 arrivals, and a 200).
    assert.equal(model.arrivals, 2);
    assert.equal(model.connections, 1);
  });
});

Deno.test("EDGEWORKER_MODEL_IDLE_SECONDS: 1.5 by default; 0 or a word is refused naming it", () => {
  assert.equal(readEnv({}).EDGEWORKER_MODEL_IDLE_SECONDS, 1.5);
  assert.equal(
    readEnv({ EDGEWORKER_MODEL_IDLE_SECONDS: "0.25" })
      .EDGEWORKER_MODEL_IDLE_SECONDS,
    0.25,
  );
  for (const bad of ["0", "-1", "soon"]) {
    assertEnvRefused(
      { EDGEWORKER_MODEL_IDLE_SECONDS: bad },
      "EDGEWORKER_MODEL_IDLE_SECONDS",
    );
  }
});
