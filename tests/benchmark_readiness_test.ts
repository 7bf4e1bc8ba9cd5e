/**
 * The benchmark as a user sees it: a worker measures the scripted model
 * server of known speed, shows `max_perf` on `/status`, caches it in
 * `.has_benchmark` and reuses it; a benchmark that only fails is an error.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { HandlerConfig } from "../lib/config/schemas.ts";
import { startUpstream, type UpstreamHandle } from "./helpers/upstream.ts";
import { type Running, startWorker } from "./helpers/worker.ts";
import { waitFor } from "./helpers/http.ts";

/** Units per second per request slot of the scripted model server. */
const RATE = 50;
const CONCURRENCY = 4;
const RUNS = 3;
/** Workload of a benchmark request: 100 ms at RATE. */
const W = 5;
/** What the benchmark should measure: units per second at CONCURRENCY. */
const TRUTH = RATE * CONCURRENCY;
/** Requests of one benchmark: a warm-up, then RUNS rounds. */
const BENCHMARK_REQUESTS = 1 + RUNS * CONCURRENCY;

const HANDLER: HandlerConfig = {
  route: "/work",
  allowParallelRequests: true,
  workload: { kind: "field", path: "w" },
  benchmark: {
    generator: () => ({ w: W }),
    runs: RUNS,
    concurrency: CONCURRENCY,
  },
};

async function status(w: Running): Promise<Record<string, unknown>> {
  return await (await fetch(`${w.url}/status`)).json();
}

/** Starts a worker on the scripted model server with its cache at `cache`. */
function start(
  s: UpstreamHandle,
  cache: string,
  env: Record<string, string> = {},
): Promise<Running> {
  return startWorker(
    { modelServerUrl: s.url, handlers: [HANDLER] },
    { EDGEWORKER_BENCHMARK_FILE: cache, ...env },
  );
}

/** Runs `fn` with the scripted model server and a temp dir for the cache, then cleans up. */
async function withStandIn(
  fn: (s: UpstreamHandle, cache: string, workers: Running[]) => Promise<void>,
  options: { workStatus?: number } = {},
): Promise<void> {
  const s = startUpstream({ rate: RATE, ...options });
  const dir = await Deno.makeTempDir({ prefix: "benchmark_readiness_test_" });
  const workers: Running[] = [];
  try {
    await fn(s, join(dir, ".has_benchmark"), workers);
  } finally {
    for (const w of workers) {
      await w.stop();
    }
    await s.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function readyOrError(w: Running): Promise<void> {
  await waitFor(
    () => w.lifecycle.ready || w.lifecycle.state === "error",
    5000,
    "ready or error",
  );
}

function exists(path: string): Promise<boolean> {
  return Deno.stat(path).then(() => true, () => false);
}

Deno.test("benchmark: max_perf within 15% of the true rate, cached as a Python float and reused", async () => {
  await withStandIn(async (s, cache, workers) => {
    const first = await start(s, cache);
    workers.push(first);
    await readyOrError(first);
    assert.equal(first.lifecycle.state, "ready", first.lifecycle.errorMsg);
    assert.equal(s.workRequests, BENCHMARK_REQUESTS);
    // Sent by the client requests use (it asks for identity; fetch would
    // ask for gzip and br), so the benchmark measures their path.
    assert.deepEqual(
      [...new Set(s.calls.map((c) => c.headers.get("accept-encoding")))],
      ["identity"],
    );

    const maxPerf = (await status(first)).max_perf as number;
    assert.ok(
      Math.abs(maxPerf - TRUTH) <= 0.15 * TRUTH,
      `max_perf ${maxPerf}, truth ${TRUTH}`,
    );
    // `.has_benchmark` as Python writes it: str(float), read back exactly.
    const text = await Deno.readTextFile(cache);
    assert.match(text, /^\d+\.\d+$/);
    assert.equal(Number(text), maxPerf);

    // A restart (stopped worker started again) skips the benchmark.
    await first.shutdown();
    const second = await start(s, cache);
    workers.push(second);
    await readyOrError(second);
    assert.equal(second.lifecycle.state, "ready");
    assert.equal(s.workRequests, BENCHMARK_REQUESTS, "no benchmark requests");
    assert.equal((await status(second)).max_perf, maxPerf);
  });
});

Deno.test("benchmark: a .has_benchmark written by Python is used as is", async () => {
  await withStandIn(async (s, cache, workers) => {
    await Deno.writeTextFile(cache, "123.5\n");
    const w = await start(s, cache);
    workers.push(w);
    await readyOrError(w);
    assert.equal(w.lifecycle.state, "ready");
    assert.equal((await status(w)).max_perf, 123.5);
    assert.equal(s.workRequests, 0);
  });
});

Deno.test("benchmark: EDGEWORKER_BENCHMARK=force runs it again despite the cache", async () => {
  await withStandIn(async (s, cache, workers) => {
    await Deno.writeTextFile(cache, "123.5\n");
    const w = await start(s, cache, { EDGEWORKER_BENCHMARK: "force" });
    workers.push(w);
    await readyOrError(w);
    assert.equal(w.lifecycle.state, "ready", w.lifecycle.errorMsg);
    assert.equal(s.workRequests, BENCHMARK_REQUESTS);
    const maxPerf = (await status(w)).max_perf as number;
    assert.ok(Math.abs(maxPerf - TRUTH) <= 0.15 * TRUTH, `max_perf ${maxPerf}`);
    assert.equal(Number(await Deno.readTextFile(cache)), maxPerf);
  });
});

Deno.test("benchmark: EDGEWORKER_BENCHMARK=skip is ready with max_perf 0 and sends nothing", async () => {
  await withStandIn(async (s, cache, workers) => {
    const w = await start(s, cache, { EDGEWORKER_BENCHMARK: "skip" });
    workers.push(w);
    await readyOrError(w);
    assert.equal(w.lifecycle.state, "ready");
    assert.equal((await status(w)).max_perf, 0);
    assert.equal(s.workRequests, 0);
    assert.equal(await exists(cache), false);
  });
});

Deno.test("benchmark: every request failing (HTTP 500) is an error naming the failures", async () => {
  await withStandIn(async (s, cache, workers) => {
    const w = await start(s, cache);
    workers.push(w);
    await readyOrError(w);
    const res = await fetch(`${w.url}/ready`);
    const body = await res.json();
    const expected = `Benchmark failed: all ${
      RUNS * CONCURRENCY
    } requests failed: HTTP 500 from ${s.url}/work`;
    assert.equal(res.status, 503);
    const { loading_seconds, health, ...rest } = body;
    assert.deepEqual(rest, { state: "error", error_msg: expected });
    assert.equal(health.alive, "ok");
    assert.equal(health.generation.status, "off", "no canary configured");
    assert.equal(
      typeof loading_seconds,
      "number",
      "never ready: still loading",
    );
    const st = await status(w);
    assert.equal(st.state, "error");
    assert.equal(st.error_msg, expected);
    assert.equal(st.max_perf, 0);
    assert.equal(s.workRequests, BENCHMARK_REQUESTS);
    assert.equal(await exists(cache), false, "no cache of a failed benchmark");
  }, { workStatus: 500 });
});

Deno.test("benchmark: a model server refusing connections is an error naming the cause", async () => {
  await withStandIn(async (s, cache, workers) => {
    await s.close();
    const w = await start(s, cache);
    workers.push(w);
    await readyOrError(w);
    assert.equal(w.lifecycle.state, "error");
    const st = await status(w);
    assert.match(
      String(st.error_msg),
      new RegExp(
        `^Benchmark failed: all ${RUNS * CONCURRENCY} requests failed: .+`,
      ),
    );
    assert.equal(await exists(cache), false);
  });
});
