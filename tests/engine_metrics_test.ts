import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import {
  EngineMetricsScraper,
  type EngineSnapshot,
  parseEngineMetrics,
  sumSamples,
} from "../lib/model/engine_metrics.ts";
import { captureLogs } from "./helpers/logs.ts";
import { waitFor } from "./helpers/http.ts";
import { startUpstream, type UpstreamHandle } from "./helpers/upstream.ts";

const VLLM_TEXT =
  `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 4.0
vllm:num_requests_waiting{engine="1",model_name="m"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.75
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="m"} 5.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 8.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 8.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 2.0
vllm:time_to_first_token_seconds_count{engine="1",model_name="m"} 2.0
vllm:time_to_first_token_seconds_sum{engine="1",model_name="m"} 1.0
vllm:num_requests_running_extra{x="a b } c"} 100
weird{label="has } brace and \\" quote"} 7
vllm:prompt_tokens_total{model_name="m"} 1.2e+06
`;

/** The scripted model server answering every request with `handler`. */
function serve(
  handler: () => Response | Promise<Response>,
): UpstreamHandle {
  return startUpstream({ script: handler });
}

Deno.test("vLLM text: sums label sets, max KV usage, mean TTFT", () => {
  const snap = parseEngineMetrics(VLLM_TEXT, "vllm");
  assert.deepEqual(snap, {
    running: 5,
    waiting: 4,
    kvCacheUsage: 0.75,
    ttftSeconds: 0.3,
  });
  // Older vLLM name for KV usage.
  const old = parseEngineMetrics(
    'vllm:gpu_cache_usage_perc{model_name="m"} 0.4\n',
    "vllm",
  );
  assert.deepEqual(old, { kvCacheUsage: 0.4 });
  // No TTFT observations yet: no mean.
  assert.deepEqual(
    parseEngineMetrics("vllm:time_to_first_token_seconds_count 0\n", "vllm"),
    {},
  );
});

Deno.test("SGLang and TGI names", () => {
  const sglang = parseEngineMetrics(
    [
      'sglang:num_running_reqs{model_name="m"} 6',
      'sglang:num_queue_reqs{model_name="m"} 2',
      'sglang:token_usage{model_name="m"} 0.42',
      'sglang:time_to_first_token_seconds_sum{model_name="m"} 3',
      'sglang:time_to_first_token_seconds_count{model_name="m"} 6',
    ].join("\n"),
    "sglang",
  );
  assert.deepEqual(sglang, {
    running: 6,
    waiting: 2,
    kvCacheUsage: 0.42,
    ttftSeconds: 0.5,
  });
  const tgi = parseEngineMetrics(
    "# TYPE tgi_queue_size gauge\ntgi_queue_size 3\ntgi_batch_current_size 8\n",
    "tgi",
  );
  assert.deepEqual(tgi, { queueSize: 3, batchSize: 8, running: 8, waiting: 3 });
});

Deno.test("the parser tolerates junk", () => {
  const text = [
    "garbage line without value",
    'x{unterminated="1} 5',
    "x NaNish",
    "x 2 1700000000000",
    'x{a="1"} 3',
    "   x   +Inf",
    "",
    "# x 100",
  ].join("\n");
  assert.equal(sumSamples(text, new Set(["x"])).get("x"), Infinity);
  assert.equal(
    sumSamples('x 2 123\nx{a="}"} 3\n', new Set(["x"])).get("x"),
    5,
  );
  assert.equal(sumSamples(VLLM_TEXT, new Set(["weird"])).get("weird"), 7);
});

Deno.test("scrapes a real server on an interval, off the request path", async () => {
  let hits = 0;
  let running = 1;
  await using server = serve(() => {
    hits++;
    const text = VLLM_TEXT.replace(
      'vllm:num_requests_running{engine="1",model_name="m"} 2.0',
      `vllm:num_requests_running{engine="1",model_name="m"} ${running}`,
    );
    return new Response(text, { headers: { "content-type": "text/plain" } });
  });
  const scraper = new EngineMetricsScraper({
    url: `${server.url}/metrics`,
    intervalMs: 30,
    kind: "vllm",
  });
  assert.deepEqual(scraper.snapshot(), {});
  scraper.start();
  await waitFor(
    () => scraper.snapshot().scrapedAt !== undefined,
    3000,
    "scrape",
  );
  assert.equal(scraper.snapshot().running, 4);
  assert.equal(scraper.snapshot().kvCacheUsage, 0.75);
  running = 10;
  await waitFor(() => scraper.snapshot().running === 13, 3000, "rescrape");
  assert.ok(hits >= 2);
  await scraper.close();
  const after = hits;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(hits, after, "no scrape after close");
});

Deno.test("a failing endpoint is logged once and never throws", async () => {
  await using logs = await captureLogs();
  let fail = true;
  await using server = serve(() =>
    fail
      ? new Response("boom", { status: 500 })
      : new Response("vllm:num_requests_waiting 9\n")
  );
  const scraper = new EngineMetricsScraper({
    url: `${server.url}/metrics`,
    intervalMs: 20,
    kind: "vllm",
  });
  scraper.start();
  await waitFor(() => scraper.snapshot().error !== undefined, 3000, "error");
  await new Promise((r) => setTimeout(r, 200)); // ~10 more failing scrapes
  const warns = (): LogRecord[] =>
    logs.records.filter((r) => r.level === "warning");
  assert.equal(
    warns().length,
    1,
    JSON.stringify(warns().map((r) => [r.category, r.message])),
  );
  assert.equal(scraper.snapshot().error, "HTTP 500");
  assert.equal(scraper.snapshot().scrapedAt, undefined);

  fail = false;
  await waitFor(() => scraper.snapshot().waiting === 9, 3000, "recovery");
  const ok: EngineSnapshot = scraper.snapshot();
  assert.equal(ok.error, undefined);
  assert.ok(
    logs.records.some((r) => r.level === "info"),
    "recovery is logged",
  );

  fail = true;
  await waitFor(() => scraper.snapshot().error !== undefined, 3000, "error 2");
  assert.equal(
    scraper.snapshot().scrapedAt,
    ok.scrapedAt,
    "keeps last good time",
  );
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(warns().length, 2, "a new outage is logged once more");
  await scraper.close();
});

Deno.test("a missing endpoint (connection refused) is logged once", async () => {
  await using logs = await captureLogs();
  // Find a free port, then close it so nothing listens there.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const scraper = new EngineMetricsScraper({
    url: `http://127.0.0.1:${port}/metrics`,
    intervalMs: 20,
    kind: "sglang",
  });
  scraper.start();
  await waitFor(() => scraper.snapshot().error !== undefined, 3000, "error");
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(logs.records.filter((r) => r.level === "warning").length, 1);
  assert.equal(typeof (await scraper.scrape()).error, "string");
  await scraper.close();
  await scraper.close(); // idempotent
});
