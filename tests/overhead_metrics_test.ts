/**
 * The worker's own overhead in `/metrics` (parsed with the real parser):
 * time before the model call is sent, time added to the first byte, slot
 * wait, streams whose chunks waited for a slow client; and the headers
 * that keep a reverse proxy from buffering a stream.
 */
import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { readAll } from "./helpers/http.ts";
import { post, waitFor } from "./helpers/http.ts";
import { rawConnect } from "./helpers/raw_http.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { envelope, startWorker } from "./helpers/worker.ts";

interface Family {
  name: string;
  type: string;
}

/** `/metrics` text, checked to parse, and one raw sample of it. */
async function scrape(url: string) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const families = new Map(
    (parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]),
  );
  // The parser folds labelled histograms into one sample: read the lines.
  const sample = (line: string): number => {
    const hit = text.split("\n").find((l) => l.startsWith(line + " "));
    assert.ok(hit, `missing ${line}`);
    return Number(hit.slice(line.length + 1));
  };
  return { families, sample };
}

const BIG_CHUNK = 64 * 1024;
const BIG_CHUNKS = 400; // 25 MiB: more than the sockets between can hold

Deno.test("overhead histograms count every request and stay below what the client saw", async () => {
  const up = startUpstream();
  const w = await startWorker({
    modelServerUrl: up.url,
    handlers: [
      { route: "/echo", allowParallelRequests: true, maxConcurrency: 4 },
      { route: "/stream", allowParallelRequests: true },
    ],
  });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    let clientMs = 0;
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const res = await post(w.url, "/echo", envelope({ i }));
      await res.text();
      clientMs += performance.now() - t0;
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-accel-buffering"), null);
    }
    let clientFirstByteMs = 0;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const res = await post(
        w.url,
        "/stream",
        envelope({ chunks: 3, gap_ms: 80 }),
      );
      const reader = res.body!.getReader();
      await reader.read();
      clientFirstByteMs += performance.now() - t0;
      while (!(await reader.read()).done) { /* to the end */ }
      assert.equal(res.headers.get("x-accel-buffering"), "no");
      assert.equal(res.headers.get("cache-control"), "no-transform");
    }
    await waitFor(() => w.ledger.inFlightCount === 0, 3000, "ledger empty");
    const { families, sample } = await scrape(w.url);
    for (
      const name of [
        "edgeworker_overhead_before_send_seconds",
        "edgeworker_overhead_first_byte_seconds",
        "edgeworker_queue_wait_seconds",
      ]
    ) assert.equal(families.get(name)?.type, "HISTOGRAM", name);
    assert.equal(
      families.get("edgeworker_streams_delayed_total")?.type,
      "COUNTER",
    );

    const echo = '{route="/echo"}';
    const stream = '{route="/stream"}';
    const before = "edgeworker_overhead_before_send_seconds";
    const first = "edgeworker_overhead_first_byte_seconds";
    assert.equal(sample(`${before}_count${echo}`), 20);
    assert.equal(sample(`${first}_count${echo}`), 20);
    assert.equal(sample(`${before}_count${stream}`), 5);
    assert.equal(sample(`${first}_count${stream}`), 5);
    // Only the handler with slots waits for one.
    assert.equal(sample(`edgeworker_queue_wait_seconds_count${echo}`), 20);
    assert.equal(sample(`edgeworker_queue_wait_seconds_count${stream}`), 0);
    // The worker's own time is part of what the client waited for.
    const echoOwn = sample(`${before}_sum${echo}`) +
      sample(`${first}_sum${echo}`);
    assert.ok(echoOwn > 0, "no overhead measured");
    assert.ok(echoOwn * 1000 < clientMs, `${echoOwn * 1000} vs ${clientMs} ms`);
    const streamOwn = sample(`${before}_sum${stream}`) +
      sample(`${first}_sum${stream}`);
    assert.ok(
      streamOwn * 1000 < clientFirstByteMs,
      `${streamOwn * 1000} vs ${clientFirstByteMs} ms`,
    );
    // The model's 80 ms between chunks (over the 50 ms threshold) are not
    // the worker's: a client that reads takes each chunk at once. (At most
    // one stream may meet a pause of this shared test machine.)
    assert.ok(sample(`edgeworker_streams_delayed_total${stream}`) <= 1);
  } finally {
    await w.shutdown();
    await up.close();
    await Deno.remove(w.dir, { recursive: true });
  }
});

Deno.test("a stream whose client does not read counts as delayed; the model's own Cache-Control keeps its value", async () => {
  const chunk = new Uint8Array(BIG_CHUNK).fill(97);
  const up = startUpstream({
    script: ({ path }) => {
      if (path === "/cached") {
        return new Response("data: 1\n\n", {
          headers: {
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
          },
        });
      }
      if (path !== "/big") return undefined;
      let n = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          pull(c) {
            if (n++ < BIG_CHUNKS) c.enqueue(chunk);
            else c.close();
          },
        }),
        { headers: { "content-type": "application/octet-stream" } },
      );
    },
  });
  const w = await startWorker({
    modelServerUrl: up.url,
    handlers: [
      { route: "/big", allowParallelRequests: true },
      { route: "/cached", allowParallelRequests: true },
    ],
  });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const cached = await post(w.url, "/cached", envelope({}));
    await readAll(cached);
    assert.equal(cached.headers.get("cache-control"), "no-cache, no-transform");

    const body = envelope({});
    const port = Number(new URL(w.url).port);
    const conn = await rawConnect(
      port,
      `POST /big HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n` +
        `content-length: ${body.length}\r\n\r\n${body}`,
    );
    // Not reading: the sockets fill and the worker's chunks must wait.
    await new Promise((r) => setTimeout(r, 500));
    const buf = new Uint8Array(256 * 1024);
    let got = 0;
    const deadline = Date.now() + 20_000;
    while (got < BIG_CHUNK * BIG_CHUNKS && Date.now() < deadline) {
      const n = await conn.read(buf);
      if (n === null) break;
      got += n;
    }
    conn.close();
    assert.ok(got >= BIG_CHUNK * BIG_CHUNKS, `read ${got} bytes`);
    await waitFor(() => w.ledger.inFlightCount === 0, 5000, "ledger empty");
    const { sample } = await scrape(w.url);
    assert.equal(sample('edgeworker_streams_delayed_total{route="/big"}'), 1);
  } finally {
    await w.shutdown();
    await up.close();
    await Deno.remove(w.dir, { recursive: true });
  }
});
