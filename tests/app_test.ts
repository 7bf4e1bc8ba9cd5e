import assert from "node:assert/strict";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import { startUpstream, type UpstreamHandle } from "./helpers/upstream.ts";
import { envelope, startWorker, withUpstreamWorker } from "./helpers/worker.ts";
import { post, waitFor } from "./helpers/http.ts";

function config(
  upstream: UpstreamHandle,
  handlers: WorkerConfig["handlers"],
): WorkerConfig {
  return { modelServerUrl: upstream.url, handlers };
}

const PARALLEL = [
  { route: "/echo", allowParallelRequests: true },
  { route: "/stream", allowParallelRequests: true },
  { route: "/reset", allowParallelRequests: true },
  { route: "/status", allowParallelRequests: true },
];

Deno.test("a JSON answer is relayed and auth_data never reaches the model", async () => {
  await withUpstreamWorker(PARALLEL, async (w, up) => {
    const res = await post(
      w.url,
      "/echo",
      envelope({ prompt: "hi", max_tokens: 3 }),
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-model"), "scripted");
    assert.deepEqual(await res.json(), {
      received: { prompt: "hi", max_tokens: 3 },
    });
    assert.deepEqual(up.bodies[0], { prompt: "hi", max_tokens: 3 });
    assert.equal(up.headers[0].get("content-type"), "application/json");
    const [rec] = w.ledger.pendingFinished();
    assert.equal(rec.status, "success");
    assert.equal(rec.httpStatus, 200);
  });
});

Deno.test("the payload reaches the model as the client wrote it, byte for byte", async () => {
  await withUpstreamWorker(PARALLEL, async (w, up) => {
    const payload =
      '{ "prompt" : "h\\u00e9",\n "n": 1.50, "big": 12345678901234567890 }';
    const env = JSON.parse(envelope({}));
    const text = `{"auth_data": ${
      JSON.stringify(env.auth_data)
    }, "payload": ${payload}}`;
    const res = await post(w.url, "/echo", text);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(up.calls.find((c) => c.path === "/echo")?.text, payload);
  });
});

Deno.test("the model's own error status and body are relayed", async () => {
  await withUpstreamWorker(PARALLEL, async (w) => {
    const res = await post(w.url, "/status", envelope({ status: 400 }));
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error: "model says no" });
  });
});

Deno.test("SSE chunks reach the client before the next one is produced", async () => {
  await withUpstreamWorker(PARALLEL, async (w, up) => {
    const res = await post(
      w.url,
      "/stream",
      envelope({ chunks: 4, gap_ms: 150 }),
      {
        headers: {
          "content-type": "application/json",
          accept: "text/event-stream",
        },
      },
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    assert.equal(up.headers[0].get("accept"), "text/event-stream");
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    const arrivals: number[] = [];
    let text = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arrivals.push(Date.now());
      text += dec.decode(value);
    }
    assert.match(text, /data: \{"i":3\}/);
    assert.match(text, /data: \[DONE\]/);
    // Chunk i arrived before the stand-in produced chunk i+1 (150 ms later).
    for (let i = 0; i < up.chunkTimes.length - 1; i++) {
      const arrived = arrivals.find((t) => t >= up.chunkTimes[i]);
      assert.ok(
        arrived !== undefined && arrived < up.chunkTimes[i + 1],
        `chunk ${i} was held back`,
      );
    }
    await waitFor(() => w.ledger.pendingFinished().length === 1);
    const rec = w.ledger.pendingFinished()[0];
    assert.equal(rec.status, "success");
    assert.ok(rec.chunks >= 4);
  });
});

Deno.test("a client that leaves before a JSON answer aborts the model call", async () => {
  const handlers = [{ route: "/slow", allowParallelRequests: true }];
  await withUpstreamWorker(handlers, async (w, up) => {
    const abort = new AbortController();
    const pending = post(w.url, "/slow", envelope({ delay_ms: 600 }), {
      signal: abort.signal,
    }).catch((e) => e);
    await waitFor(() => up.bodies.length === 1, 2000, "request upstream");
    abort.abort();
    await pending;
    await waitFor(() => up.aborted === 1, 1000, "upstream abort");
    await waitFor(() => w.ledger.pendingFinished().length === 1);
    const rec = w.ledger.pendingFinished()[0];
    assert.equal(rec.status, "cancelled");
    assert.equal(rec.httpStatus, 499);
  });
});

Deno.test("a client that leaves mid-stream aborts the model call and is recorded as cancelled", async () => {
  await withUpstreamWorker(PARALLEL, async (w, up) => {
    const abort = new AbortController();
    const res = await post(
      w.url,
      "/stream",
      envelope({ chunks: 50, gap_ms: 40 }),
      {
        signal: abort.signal,
      },
    );
    const reader = res.body!.getReader();
    await reader.read();
    const left = Date.now();
    abort.abort();
    await reader.cancel().catch(() => {});
    await waitFor(() => up.aborted === 1, 2000, "upstream abort");
    assert.ok(Date.now() - left < 500, "model call not aborted promptly");
    await waitFor(() => w.ledger.pendingFinished().length === 1);
    const rec = w.ledger.pendingFinished()[0];
    assert.equal(rec.status, "cancelled");
    assert.equal(rec.httpStatus, 499);
    assert.ok(up.chunkTimes.length < 50);
  });
});

Deno.test("a model that resets mid-stream ends the stream and records an error", async () => {
  await withUpstreamWorker(PARALLEL, async (w) => {
    const res = await post(
      w.url,
      "/reset",
      envelope({ chunks: 10, gap_ms: 20 }),
    );
    assert.equal(res.status, 200);
    await assert.rejects(res.text());
    await waitFor(() => w.ledger.pendingFinished().length === 1);
    assert.equal(w.ledger.pendingFinished()[0].status, "error");
  });
});

Deno.test("a model server that is down gives 502 with a JSON error", async () => {
  const up = startUpstream();
  const deadUrl = up.url;
  await up.close();
  const w = await startWorker({
    modelServerUrl: deadUrl,
    handlers: [{ route: "/echo", allowParallelRequests: true }],
  });
  try {
    const res = await post(w.url, "/echo", envelope({}));
    assert.equal(res.status, 502);
    const body = await res.json();
    assert.match(body.error, /model server unreachable/);
    assert.equal(w.ledger.pendingFinished()[0].status, "error");
    assert.equal(w.ledger.inFlightCount, 0);
  } finally {
    await w.stop();
  }
});

Deno.test("bad envelopes get 422 naming each field, and nothing reaches the model", async () => {
  await withUpstreamWorker(PARALLEL, async (w, up) => {
    const cases: [string, unknown][] = [
      ["{not json", { error: "invalid JSON" }],
      ["[1,2]", {
        auth_data: "field missing",
        payload: "field missing",
        body: "expected a JSON object",
      }],
      [JSON.stringify({ payload: {} }), { auth_data: "field missing" }],
      [
        JSON.stringify({ auth_data: JSON.parse(envelope({})).auth_data }),
        { payload: "field missing" },
      ],
      [
        JSON.stringify({ ...JSON.parse(envelope({})), payload: [1] }),
        { payload: { data: "payload must be a dictionary" } },
      ],
      [
        JSON.stringify({ ...JSON.parse(envelope({})), auth_data: "token" }),
        {
          auth_data: {
            cost: "missing parameter",
            endpoint: "missing parameter",
            reqnum: "missing parameter",
            request_idx: "missing parameter",
            signature: "missing parameter",
            url: "missing parameter",
          },
          error: "auth_data must be an object, not string",
        },
      ],
    ];
    const noIdx = JSON.parse(envelope({}));
    delete noIdx.auth_data.request_idx;
    cases.push([JSON.stringify(noIdx), {
      auth_data: { request_idx: "missing parameter" },
    }]);
    const badReqnum = JSON.parse(envelope({}));
    badReqnum.auth_data.reqnum = "seven";
    cases.push([JSON.stringify(badReqnum), {
      auth_data: { reqnum: "Invalid input: expected number, received string" },
    }]);
    for (const [body, expected] of cases) {
      const res = await post(w.url, "/echo", body);
      assert.equal(res.status, 422, body);
      assert.deepEqual(await res.json(), expected);
    }
    const deep = "[".repeat(5000) + "]".repeat(5000);
    const res = await post(w.url, "/echo", deep);
    assert.equal(res.status, 422);
    assert.match((await res.json()).error, /nested deeper/);
    assert.equal(up.bodies.length, 0);
    // The worker is still healthy.
    const after = await post(w.url, "/echo", envelope({ ok: 1 }));
    assert.equal(after.status, 200);
    await after.body?.cancel();
  });
});

Deno.test("unknown paths get 404 and wrong methods 405, as JSON", async () => {
  await withUpstreamWorker(PARALLEL, async (w) => {
    const missing = await fetch(`${w.url}/nope`);
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { error: "no route /nope" });
    const wrong = await fetch(`${w.url}/echo`);
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get("allow"), "POST");
    assert.equal((await wrong.json()).error, "method GET not allowed");
  });
});

Deno.test("over the queue budget a request gets 429 with Retry-After", async () => {
  const handlers = [{
    route: "/slow",
    allowParallelRequests: true,
    maxQueueTime: 3,
  }];
  const up = startUpstream();
  const dir = await Deno.makeTempDir();
  // A cached benchmark of 50 units/s: two requests of 100 in flight = 4 s wait.
  await Deno.writeTextFile(`${dir}/.has_benchmark`, "50.0");
  const w = await startWorker(config(up, handlers), {
    EDGEWORKER_BENCHMARK_FILE: `${dir}/.has_benchmark`,
  });
  try {
    await waitFor(() => w.lifecycle.ready);
    const slow = [1, 2].map((seq) =>
      post(
        w.url,
        "/slow",
        envelope({ seq, delay_ms: 600 }, { request_idx: seq }),
      )
    );
    await waitFor(() => w.ledger.inFlightCount === 2);
    const res = await post(
      w.url,
      "/slow",
      envelope({ seq: 3 }, { request_idx: 3 }),
    );
    assert.equal(res.status, 429);
    assert.equal(res.headers.get("retry-after"), "1");
    const body = await res.json();
    assert.equal(body.estimated_wait_seconds, 4);
    for (const r of await Promise.all(slow)) await r.body?.cancel();
    await waitFor(() => w.ledger.inFlightCount === 0);
    const rejected = w.ledger.pendingFinished().filter((r) =>
      r.status === "rejected"
    );
    assert.deepEqual(rejected.map((r) => [r.requestIdx, r.rejectReason]), [[
      3,
      "budget",
    ]]);
    assert.equal(w.ledger.window().rejected, 100);
  } finally {
    await w.stop();
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** One FIFO route with no queue-time limit. */
const FIFO_SLOW = [{
  route: "/slow",
  allowParallelRequests: false,
  maxQueueTime: null,
}];

Deno.test("FIFO handlers keep arrival order under 20 concurrent requests, one at a time", async () => {
  await withUpstreamWorker(FIFO_SLOW, async (w, up) => {
    const pending: Promise<Response>[] = [];
    for (let seq = 0; seq < 20; seq++) {
      pending.push(
        post(
          w.url,
          "/slow",
          envelope({ seq, delay_ms: 10 }, { request_idx: seq }),
        ),
      );
      await waitFor(() =>
        w.ledger.inFlightCount + w.ledger.pendingFinished().length > seq
      );
    }
    const answers = await Promise.all(
      pending.map(async (p) => (await p).json()),
    );
    assert.deepEqual(answers.map((a) => a.seq), [...Array(20).keys()]);
    assert.deepEqual(up.bodies.map((b) => b.seq), [...Array(20).keys()]);
    assert.equal(up.maxActive, 1);
  });
});

Deno.test("maxConcurrency bounds parallel requests to N slots", async () => {
  const handlers = [{
    route: "/slow",
    allowParallelRequests: true,
    maxConcurrency: 3,
  }];
  await withUpstreamWorker(handlers, async (w, up) => {
    const all = await Promise.all(
      [...Array(15).keys()].map((seq) =>
        post(
          w.url,
          "/slow",
          envelope({ seq, delay_ms: 40 }, { request_idx: seq }),
        )
      ),
    );
    for (const r of all) assert.equal(r.status, 200, await r.text());
    assert.equal(up.maxActive, 3);
    assert.equal(up.bodies.length, 15);
  });
});

Deno.test("a request that leaves while queued frees its place at once", async () => {
  await withUpstreamWorker(FIFO_SLOW, async (w, up) => {
    const first = post(
      w.url,
      "/slow",
      envelope({ seq: 1, delay_ms: 400 }, { request_idx: 1 }),
    );
    await waitFor(() => up.bodies.length === 1);
    const abort = new AbortController();
    const second = post(
      w.url,
      "/slow",
      envelope({ seq: 2 }, { request_idx: 2 }),
      {
        signal: abort.signal,
      },
    ).catch((e) => e);
    await waitFor(() => w.ledger.inFlightCount === 2);
    abort.abort();
    await second;
    await waitFor(
      () => w.ledger.inFlightCount === 1,
      1000,
      "queued request to leave",
    );
    const third = post(
      w.url,
      "/slow",
      envelope({ seq: 3, delay_ms: 1 }, { request_idx: 3 }),
    );
    assert.equal((await (await first).json()).seq, 1);
    assert.equal((await (await third).json()).seq, 3);
    assert.deepEqual(up.bodies.map((b) => b.seq), [1, 3]);
    const byIdx = new Map(
      w.ledger.pendingFinished().map((r) => [r.requestIdx, r.status]),
    );
    assert.equal(byIdx.get(2), "cancelled");
  });
});

Deno.test("/health answers while serving and /ready follows the lifecycle", async () => {
  await withUpstreamWorker(PARALLEL, async (w) => {
    const health = await fetch(`${w.url}/health`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "alive");
    const ready = await fetch(`${w.url}/ready`);
    assert.equal(ready.status, 200);
    assert.equal((await ready.json()).state, "ready");
  });
});
