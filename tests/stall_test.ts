/**
 * The stall detector end to end: streams from the scripted model server
 * that go quiet are flagged in `/metrics` (`edgeworker_streams_stalled`,
 * parsed with a real Prometheus parser) and `/status`, un-flagged when
 * bytes flow again, and with `EDGEWORKER_STALL_ABORT` aborted with a
 * recorded error.
 */
import assert from "node:assert/strict";
import { sleep } from "../dev/_async.ts";
import { scrape, valueOf } from "./helpers/metrics.ts";
import type { UpstreamHandle } from "./helpers/upstream.ts";
import { post, waitFor } from "./helpers/http.ts";
import {
  envelope,
  type Running,
  withUpstreamWorker,
} from "./helpers/worker.ts";

/** The value of `name` (with exactly `labels`) on `w`'s `/metrics`. */
async function gauge(
  w: Running,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  return valueOf((await scrape(w.url)).families, name, labels);
}

/**
 * `/metrics` counts one stall (`aborted` of them aborted) and one request
 * on `route` ending in `outcome`.
 */
async function assertOneStall(
  w: Running,
  want: { aborted: number; route: string; outcome: string },
): Promise<void> {
  assert.equal(await gauge(w, "edgeworker_streams_stalled_total"), 1);
  assert.equal(
    await gauge(w, "edgeworker_streams_stall_aborted_total"),
    want.aborted,
  );
  assert.equal(
    await gauge(w, "edgeworker_requests_total", {
      route: want.route,
      outcome: want.outcome,
    }),
    1,
  );
}

const enc = new TextEncoder();

/** `/pause`: one chunk, 1.2 s of silence, then two more and the end. */
function pausingStream(signal: AbortSignal): Response {
  const steps: [number, string][] = [
    [0, "data: a\n\n"],
    [1200, "data: b\n\n"],
    [
      10,
      "data: [DONE]\n\n",
    ],
  ];
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (i === steps.length) return c.close();
      const [wait, text] = steps[i++];
      if (wait > 0 && !await sleep(wait, signal)) return;
      c.enqueue(enc.encode(text));
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream" },
  });
}

async function withStallWorker(
  env: Record<string, string>,
  fn: (w: Running, up: UpstreamHandle) => Promise<void>,
): Promise<void> {
  await withUpstreamWorker(
    [
      { route: "/pause", allowParallelRequests: true },
      { route: "/stall", allowParallelRequests: true },
    ],
    fn,
    env,
    {
      upstream: {
        script: (r) =>
          r.path === "/pause" ? pausingStream(r.signal) : undefined,
      },
    },
  );
}

Deno.test("stall: a stream that receives no byte for the stall time is flagged in /metrics and /status, and un-flagged when bytes flow again", async () => {
  await withStallWorker({ EDGEWORKER_STALL_SECONDS: "0.3" }, async (w) => {
    assert.equal(await gauge(w, "edgeworker_streams_stalled"), 0);
    const res = await post(w.url, "/pause", envelope({}));
    assert.equal(res.status, 200);
    const text = res.text(); // reads on: no back-pressure on the relay
    await waitFor(
      async () => await gauge(w, "edgeworker_streams_stalled") === 1,
      1100,
      "flagged",
    );
    const status = await (await fetch(`${w.url}/status`)).json();
    assert.deepEqual(status.stalls, {
      seconds: 0.3,
      abort: false,
      now: 1,
      total: 1,
      aborted: 0,
    });
    assert.equal(await text, "data: a\n\ndata: b\n\ndata: [DONE]\n\n");
    await waitFor(
      async () => await gauge(w, "edgeworker_streams_stalled") === 0,
      1000,
      "un-flagged",
    );
    // Only flagged: the request still succeeded.
    await assertOneStall(w, {
      aborted: 0,
      route: "/pause",
      outcome: "success",
    });
  });
});

Deno.test("stall: with EDGEWORKER_STALL_ABORT a stalled stream is aborted, recorded as an error naming the stall", async () => {
  await withStallWorker({
    EDGEWORKER_STALL_SECONDS: "0.3",
    EDGEWORKER_STALL_ABORT: "true",
  }, async (w, up) => {
    const res = await post(w.url, "/stall", envelope({ gap_ms: 10 }));
    assert.equal(res.status, 200);
    const started = Date.now();
    // Two chunks, then the model sends nothing: the relay is cut.
    await assert.rejects(res.text());
    const cut = (Date.now() - started) / 1000;
    assert.ok(cut >= 0.3 && cut <= 0.3 + 0.25 + 1, `cut after ${cut} s`);
    await waitFor(() => w.ledger.inFlightCount === 0, 2000, "ended");
    const [record] = w.ledger.pendingFinished().filter((r) =>
      r.route === "/stall"
    );
    assert.equal(record.status, "error");
    assert.equal(record.httpStatus, 504);
    assert.equal(
      record.detail,
      "stall timeout of 0.3 s expired while streaming",
    );
    assert.equal(await gauge(w, "edgeworker_streams_stalled"), 0);
    await assertOneStall(w, { aborted: 1, route: "/stall", outcome: "error" });
    await waitFor(() => up.aborted >= 1, 2000, "model call aborted");
  });
});

Deno.test("stall: EDGEWORKER_STALL_SECONDS=0 turns the detector off", async () => {
  await withStallWorker({ EDGEWORKER_STALL_SECONDS: "0" }, async (w) => {
    assert.equal(
      (await scrape(w.url)).families.has("edgeworker_streams_stalled"),
      false,
    );
    const status = await (await fetch(`${w.url}/status`)).json();
    assert.equal(status.stalls, null);
  });
});
