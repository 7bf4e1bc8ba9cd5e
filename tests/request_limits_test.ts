/**
 * Hostile and broken model answers on the request path: every timeout
 * (first byte, idle, total, queue) ends the request once with a JSON body
 * naming it and frees its slot; odd statuses and throwing listeners do not
 * wedge the FIFO; model headers that set browser policy are not relayed.
 */
import assert from "node:assert/strict";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import { envelope, startWorker, withUpstreamWorker } from "./helpers/worker.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { post, readAll, waitFor } from "./helpers/http.ts";

type Handlers = WorkerConfig["handlers"];

const fifo = (
  route: string,
  extra: Partial<Handlers[number]> = {},
): Handlers[number] => ({ route, allowParallelRequests: false, ...extra });

Deno.test("a model that never answers gets 504 first_byte and frees the FIFO", async () => {
  await withUpstreamWorker(
    [fifo("/hang", { timeouts: { firstByte: 0.3 } }), fifo("/echo")],
    async (w, up) => {
      const t0 = performance.now();
      const res = await post(w.url, "/hang", envelope({}));
      const body = await res.json();
      const ms = performance.now() - t0;
      assert.equal(res.status, 504);
      assert.equal(body.timeout, "first_byte");
      assert.equal(body.seconds, 0.3);
      assert.ok(ms >= 300, `answered after ${ms} ms`);
      await waitFor(() => up.aborted === 1, 2000, "model call aborted");
      // The FIFO is free again: the next request is served.
      const next = await post(w.url, "/echo", envelope({ n: 1 }));
      assert.equal(next.status, 200);
      await next.body?.cancel();
      const errors = w.ledger.totals().get("/hang\u0000error");
      assert.equal(errors, 1);
    },
  );
});

Deno.test("a stream that stalls is ended after the idle timeout and recorded as an error", async () => {
  await withUpstreamWorker(
    [{
      route: "/stall",
      allowParallelRequests: true,
      timeouts: { idle: 0.3 },
    }],
    async (w, up) => {
      const res = await post(
        w.url,
        "/stall",
        envelope({ chunks: 10, gap_ms: 10 }),
      );
      assert.equal(res.status, 200);
      const got = await readAll(res);
      const broke = got.error !== undefined;
      assert.ok(broke, "the stream is cut, not ended as if complete");
      assert.equal(got.text, 'data: {"i":0}\n\ndata: {"i":1}\n\n');
      await waitFor(() => up.aborted === 1, 2000, "model call aborted");
      await waitFor(() => w.ledger.inFlightCount === 0, 2000, "ended");
      assert.equal(w.ledger.totals().get("/stall\u0000error"), 1);
      const status = await (await fetch(`${w.url}/metrics`)).text();
      assert.match(
        status,
        /edgeworker_requests_total\{route="\/stall",outcome="error"\} 1/,
      );
    },
  );
});

Deno.test("the total timeout cuts a long stream; the worker-level default applies to every route", async () => {
  await withUpstreamWorker(
    [{ route: "/stream", allowParallelRequests: true }],
    async (w) => {
      const res = await post(
        w.url,
        "/stream",
        envelope({ chunks: 100, gap_ms: 20 }),
      );
      const text = await res.text().catch(() => "cut");
      assert.ok(!text.includes("[DONE]"), "the stream did not complete");
      await waitFor(() => w.ledger.inFlightCount === 0, 2000, "ended");
      assert.equal(w.ledger.totals().get("/stream\u0000error"), 1);
    },
    { EDGEWORKER_TIMEOUT_TOTAL: "0.3" },
  );
});

Deno.test("a handler's own timeout beats the worker's; EDGEWORKER_TIMEOUT_* overrides the config", async () => {
  const up = startUpstream();
  const w = await startWorker({
    modelServerUrl: up.url,
    timeouts: { firstByte: 30 },
    handlers: [
      { route: "/hang", allowParallelRequests: true },
      {
        route: "/slow",
        allowParallelRequests: true,
        timeouts: { firstByte: 5 },
      },
    ],
  }, { EDGEWORKER_TIMEOUT_FIRST_BYTE: "0.2" });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const hang = await post(w.url, "/hang", envelope({}));
    assert.equal(hang.status, 504);
    assert.equal((await hang.json()).seconds, 0.2);
    // /slow keeps its own 5 s: a 400 ms answer is served.
    const slow = await post(w.url, "/slow", envelope({ delay_ms: 400 }));
    assert.equal(slow.status, 200);
    await slow.body?.cancel();
  } finally {
    await w.stop();
    await up.close();
  }
});

Deno.test("a queued request past max_queue_time gets 429 and never reaches the model", async () => {
  await withUpstreamWorker(
    [
      fifo("/hang", { timeouts: { firstByte: 1 } }),
      fifo("/echo", { maxQueueTime: 0.3 }),
    ],
    async (w, up) => {
      const first = post(w.url, "/hang", envelope({}));
      await waitFor(() => up.bodies.length === 1, 2000, "first at the model");
      const res = await post(w.url, "/echo", envelope({ queued: true }));
      const body = await res.json();
      assert.equal(res.status, 429);
      assert.equal(body.timeout, "queue");
      assert.equal(body.max_queue_time, 0.3);
      assert.ok(Number(res.headers.get("retry-after")) >= 1);
      const firstRes = await first;
      assert.equal(firstRes.status, 504);
      await firstRes.body?.cancel();
      assert.equal(up.bodies.length, 1, "the queued request was removed");
      assert.equal(
        w.ledger.totals().get("/echo\u0000rejected_queue_timeout"),
        1,
      );
      const metrics = await (await fetch(`${w.url}/metrics`)).text();
      assert.match(metrics, /reason="queue_timeout"\} 1/);
    },
  );
});

/** A model server that answers with a status line HTTP cannot relay. */
function oddStatusServer(status: number, body: "length" | "chunked") {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const served = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        const buf = new Uint8Array(65536);
        try {
          // One answer per request read, on a kept-alive connection too.
          while ((await conn.read(buf)) !== null) {
            const head = body === "length"
              ? `HTTP/1.1 ${status} Odd\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}`
              : `HTTP/1.1 ${status} Odd\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5\r\ndata:\r\n0\r\n\r\n`;
            await conn.write(new TextEncoder().encode(head));
          }
        } catch { /* the worker went away */ }
      })();
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    close: async () => {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await served.catch(() => {});
    },
  };
}

for (const shape of ["length", "chunked"] as const) {
  Deno.test(`a model status of 600 (${shape} body) is a 502 error, and the FIFO keeps serving`, async () => {
    const odd = oddStatusServer(600, shape);
    const w = await startWorker({
      modelServerUrl: odd.url,
      handlers: [fifo("/odd")],
    });
    try {
      await waitFor(() => w.lifecycle.ready, 3000, "ready");
      for (let i = 0; i < 2; i++) {
        const res = await post(w.url, "/odd", envelope({}));
        const body = await res.json();
        assert.equal(res.status, 502);
        assert.match(body.error, /status 600/);
      }
      assert.equal(w.ledger.inFlightCount, 0);
      assert.equal(w.ledger.totals().get("/odd\u0000error"), 2);
      assert.equal(w.ledger.totals().get("/odd\u0000success"), undefined);
    } finally {
      await w.stop();
      await odd.close();
    }
  });
}

Deno.test("a ledger listener that throws does not skip the slot release", async () => {
  await withUpstreamWorker([fifo("/echo")], async (w) => {
    const off = w.ledger.subscribe((e) => {
      if (e.type === "finish") throw new RangeError("listener broke");
    });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await post(w.url, "/echo", envelope({ i }));
        assert.equal(res.status, 200);
        await res.body?.cancel();
      }
      assert.equal(w.ledger.totals().get("/echo\u0000success"), 3);
    } finally {
      off();
    }
  });
});

Deno.test("model headers that set browser policy are not relayed; content and x- headers are", async () => {
  await withUpstreamWorker([fifo("/headers")], async (w) => {
    const res = await post(w.url, "/headers", envelope({}));
    assert.equal(res.status, 200);
    await res.body?.cancel();
    for (
      const dropped of [
        "set-cookie",
        "access-control-allow-origin",
        "strict-transport-security",
        "location",
        "server",
        "x-frame-options",
      ]
    ) assert.equal(res.headers.get(dropped), null, dropped);
    assert.equal(res.headers.get("x-request-id"), "req-1");
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.match(res.headers.get("content-type")!, /application\/json/);
  });
});
