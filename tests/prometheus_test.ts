import assert from "node:assert/strict";
import { Ledger, type RequestInfo } from "../lib/traffic/ledger.ts";
import {
  CounterVec,
  escapeHelp,
  escapeLabelValue,
  formatValue,
  HistogramVec,
  type MetricsSources,
  TextWriter,
  WorkerMetrics,
} from "../lib/metrics/worker_metrics.ts";
import {
  type Families,
  parseFamilies,
  rawValue,
  sampleValue,
} from "./helpers/metrics.ts";

/** `edgeworker_requests_total` of `route` ending in `outcome`. */
const requests = (f: Families, route: string, outcome: string) =>
  sampleValue(f, "edgeworker_requests_total", { route, outcome });

/** `edgeworker_requests_rejected_total` for `reason`. */
const rejected = (f: Families, reason: string) =>
  sampleValue(f, "edgeworker_requests_rejected_total", { reason });

const info = (route: string, workload: number, idx = 1): RequestInfo => ({
  requestIdx: idx,
  reqnum: idx,
  route,
  workload,
});

Deno.test("escaping and value formatting follow the text format", () => {
  assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  assert.equal(escapeHelp("x\\y\nz"), "x\\\\y\\nz");
  assert.equal(formatValue(NaN), "NaN");
  assert.equal(formatValue(Infinity), "+Inf");
  assert.equal(formatValue(-Infinity), "-Inf");
  assert.equal(formatValue(0.25), "0.25");

  const w = new TextWriter();
  const c = new CounterVec("t_total", "Help with \\ and\nnewline.", ["path"]);
  c.labels('C:\\DIR\\"x"\n').inc(3);
  c.render(w);
  const h = new HistogramVec("t_seconds", "A histogram.", [], [1, 0.1, 0.5]);
  const child = h.labels();
  for (const v of [0.05, 0.2, 0.7, 3]) child.observe(v);
  h.render(w);
  const families = parseFamilies(w.text());
  const counter = families.get("t_total")!;
  assert.equal(counter.type, "COUNTER");
  assert.equal(counter.help, "Help with \\ and\nnewline.");
  assert.deepEqual(counter.metrics, [{
    value: "3",
    labels: { path: 'C:\\DIR\\"x"\n' },
  }]);
  const hist = families.get("t_seconds")!;
  assert.equal(hist.type, "HISTOGRAM");
  assert.deepEqual(hist.metrics, [{
    buckets: { "0.1": "1", "0.5": "2", "1": "3", "+Inf": "4" },
    sum: "3.95",
    count: "4",
  }]);
  assert.throws(() => new CounterVec("bad-name", "x", []));
  assert.throws(() => new HistogramVec("h", "x", ["le"], [1]));
});

Deno.test("pythonFloats writes integral values and bounds as Python does", () => {
  const w = new TextWriter({ pythonFloats: true });
  w.single("g", "gauge", "A gauge.", 3);
  w.single("f", "gauge", "A fraction.", 0.25);
  w.single("n", "gauge", "Not a number.", NaN);
  const h = new HistogramVec("t_seconds", "A histogram.", ["m"], [0.5, 2]);
  h.labels("x").observe(1);
  h.render(w);
  const text = w.text();
  assert.match(text, /^g 3\.0$/m);
  assert.match(text, /^f 0\.25$/m);
  assert.match(text, /^n NaN$/m);
  assert.match(text, /^t_seconds_bucket\{m="x",le="2\.0"\} 1\.0$/m);
  assert.match(text, /^t_seconds_bucket\{m="x",le="\+Inf"\} 1\.0$/m);
  assert.match(text, /^t_seconds_count\{m="x"\} 1\.0$/m);
  const hist = parseFamilies(text).get("t_seconds")!;
  assert.deepEqual(hist.metrics[0].buckets, {
    "0.5": "0.0",
    "2.0": "1.0",
    "+Inf": "1.0",
  });
  // The default stays the Go client's spelling.
  assert.match(new TextWriter().single("g", "gauge", "x", 3).text(), /^g 3$/m);
});

Deno.test("WorkerMetrics matches the ledger", () => {
  let clock = 1_700_000_000_000;
  const ledger = new Ledger({ now: () => clock });
  let state = "ready";
  const sources: MetricsSources = {
    lifecycle: () => state,
    benchmarkThroughput: () => 123.5,
    liveThroughput: () => 99,
    reports: () => ({
      status: { successes: 7, failures: 2 },
      delete: { successes: 3, failures: 0 },
    }),
    engine: () => ({
      running: 2,
      waiting: 1,
      kvCacheUsage: 0.5,
      scrapedAt: clock,
    }),
  };
  const metrics = new WorkerMetrics(ledger, sources, {
    durationBuckets: [0.1, 1, 10],
    ttfbBuckets: [0.05, 0.5],
  });

  // Three finished requests on /a, one on /b, one cancelled, one error.
  const a1 = ledger.open(info("/a", 100, 1));
  ledger.start(a1);
  a1.firstByteAt = clock + 20; // 0.02 s TTFB
  a1.chunks = 5;
  clock += 50;
  ledger.finish(a1, "success", 200); // 0.05 s
  const a2 = ledger.open(info("/a", 50, 2));
  ledger.start(a2);
  a2.firstByteAt = clock + 200; // 0.2 s
  a2.chunks = 7;
  clock += 2000;
  ledger.finish(a2, "success", 200); // 2 s
  const a3 = ledger.open(info("/a", 10, 3));
  clock += 500;
  ledger.finish(a3, "cancelled", 499); // 0.5 s, never started
  const b1 = ledger.open(info("/b", 10, 4));
  ledger.start(b1);
  clock += 20_000;
  ledger.finish(b1, "error", 500);
  ledger.reject(info("/a", 30, 5), "budget", 429);
  ledger.reject(info("/b", 30, 6), "signature", 401);
  ledger.reject(info("/b", 30, 7), "signature", 401);
  // Still in flight: one queued, one working.
  ledger.open(info("/a", 40, 8));
  const w = ledger.open(info("/b", 60, 9));
  ledger.start(w);

  const text = metrics.render();
  assert.ok(text.endsWith("\n"));
  const f = parseFamilies(text);
  for (const [key, n] of ledger.totals()) {
    const [route, outcome] = key.split("\u0000");
    const o = outcome.startsWith("rejected_") ? "rejected" : outcome;
    const expected = [...ledger.totals()]
      .filter(([k]) => {
        const [r, out] = k.split("\u0000");
        return r === route &&
          (out.startsWith("rejected_") ? "rejected" : out) === o;
      })
      .reduce((s, [, v]) => s + v, 0);
    assert.equal(
      requests(f, route, o),
      expected,
      `${route} ${outcome} ${n}`,
    );
  }
  assert.equal(requests(f, "/a", "success"), 2);
  assert.equal(requests(f, "/a", "error"), 0);
  assert.equal(requests(f, "/b", "rejected"), 2);
  assert.equal(f.get("edgeworker_requests_total")!.type, "COUNTER");
  assert.equal(rejected(f, "signature"), 2);
  assert.equal(rejected(f, "budget"), 1);
  assert.equal(rejected(f, "not_ready"), 0);

  assert.equal(
    sampleValue(f, "edgeworker_requests_in_flight"),
    ledger.inFlightCount,
  );
  assert.equal(sampleValue(f, "edgeworker_requests_in_flight"), 2);
  assert.equal(sampleValue(f, "edgeworker_requests_queued"), 1);
  assert.equal(
    sampleValue(f, "edgeworker_workload_in_flight"),
    ledger.currentLoad,
  );
  assert.equal(sampleValue(f, "edgeworker_workload_in_flight"), 100);
  assert.equal(sampleValue(f, "edgeworker_stream_chunks_total"), 12);
  assert.equal(sampleValue(f, "edgeworker_benchmark_throughput"), 123.5);
  assert.equal(sampleValue(f, "edgeworker_live_throughput"), 99);
  assert.equal(
    sampleValue(f, "edgeworker_lifecycle_state", { state: "ready" }),
    1,
  );
  assert.equal(
    sampleValue(f, "edgeworker_lifecycle_state", { state: "loading" }),
    0,
  );
  assert.equal(f.get("edgeworker_lifecycle_state")!.metrics.length, 6);
  assert.equal(
    sampleValue(f, "edgeworker_reports_total", {
      kind: "status",
      result: "failure",
    }),
    2,
  );
  assert.equal(
    sampleValue(f, "edgeworker_reports_total", {
      kind: "delete",
      result: "success",
    }),
    3,
  );
  assert.ok(sampleValue(f, "edgeworker_process_resident_memory_bytes")! > 0);
  assert.ok(sampleValue(f, "edgeworker_process_heap_used_bytes")! > 0);
  assert.equal(sampleValue(f, "edgeworker_engine_up"), 1);
  assert.equal(sampleValue(f, "edgeworker_engine_requests_running"), 2);
  assert.equal(sampleValue(f, "edgeworker_engine_kv_cache_usage_ratio"), 0.5);
  assert.equal(f.has("edgeworker_engine_queue_size"), false);

  // Histograms: /a saw 0.05 s, 2 s, 0.5 s; /b saw 20 s.
  const dur = "edgeworker_request_duration_seconds";
  assert.equal(f.get(dur)!.type, "HISTOGRAM");
  assert.equal(rawValue(text, `${dur}_bucket{route="/a",le="0.1"}`), 1);
  assert.equal(rawValue(text, `${dur}_bucket{route="/a",le="1"}`), 2);
  assert.equal(rawValue(text, `${dur}_bucket{route="/a",le="10"}`), 3);
  assert.equal(rawValue(text, `${dur}_bucket{route="/a",le="+Inf"}`), 3);
  assert.equal(rawValue(text, `${dur}_count{route="/a"}`), 3);
  assert.ok(Math.abs(rawValue(text, `${dur}_sum{route="/a"}`) - 2.55) < 1e-6);
  assert.equal(rawValue(text, `${dur}_bucket{route="/b",le="10"}`), 0);
  assert.equal(rawValue(text, `${dur}_bucket{route="/b",le="+Inf"}`), 1);
  const ttfb = "edgeworker_time_to_first_byte_seconds";
  assert.equal(rawValue(text, `${ttfb}_bucket{route="/a",le="0.05"}`), 1);
  assert.equal(rawValue(text, `${ttfb}_bucket{route="/a",le="0.5"}`), 2);
  assert.equal(rawValue(text, `${ttfb}_count{route="/a"}`), 2);
  assert.equal(rawValue(text, `${ttfb}_count{route="/b"}`), 0);

  // Engine down: up=0 and the stale figures disappear.
  sources.engine = () => ({ error: "HTTP 500", scrapedAt: clock });
  state = "draining";
  const f2 = parseFamilies(metrics.render());
  assert.equal(sampleValue(f2, "edgeworker_engine_up"), 0);
  assert.equal(f2.has("edgeworker_engine_requests_running"), false);
  assert.equal(
    sampleValue(f2, "edgeworker_lifecycle_state", { state: "draining" }),
    1,
  );
  assert.equal(
    sampleValue(f2, "edgeworker_lifecycle_state", { state: "ready" }),
    0,
  );

  metrics.close();
  ledger.finish(w, "success", 200);
  assert.equal(
    sampleValue(parseFamilies(metrics.render()), "edgeworker_requests_total", {
      route: "/b",
      outcome: "success",
    }),
    0,
    "closed metrics no longer follow the ledger",
  );
});

Deno.test("a single-route histogram parses into matching buckets", () => {
  const ledger = new Ledger();
  const metrics = new WorkerMetrics(ledger, {}, { durationBuckets: [1, 5] });
  for (let i = 0; i < 4; i++) {
    ledger.finish(ledger.open(info("/only", 1, i)), "success", 200);
  }
  const f = parseFamilies(metrics.render());
  const hist = f.get("edgeworker_request_duration_seconds")!;
  assert.deepEqual(hist.metrics[0].buckets, {
    "1": "4",
    "5": "4",
    "+Inf": "4",
  });
  assert.equal(
    sampleValue(f, "edgeworker_lifecycle_state", { state: "starting" }),
    1,
  );
  assert.equal(f.get("edgeworker_reports_total")!.metrics.length, 0);
  metrics.close();
});

Deno.test("WorkerMetrics created late carries the ledger's totals", () => {
  const ledger = new Ledger();
  ledger.finish(ledger.open(info("/x", 1)), "success", 200);
  ledger.finish(ledger.open(info("/x", 1)), "error", 500);
  ledger.reject(info("/x", 1), "draining", 503);
  const metrics = new WorkerMetrics(ledger);
  ledger.finish(ledger.open(info("/x", 1)), "success", 200);
  const f = parseFamilies(metrics.render());
  assert.equal(requests(f, "/x", "success"), 2);
  assert.equal(requests(f, "/x", "error"), 1);
  assert.equal(requests(f, "/x", "rejected"), 1);
  assert.equal(rejected(f, "draining"), 1);
  assert.equal(f.has("edgeworker_engine_up"), false);
  metrics.close();
});

Deno.test("rendering is independent of request history", () => {
  const ledger = new Ledger();
  const metrics = new WorkerMetrics(ledger);
  for (let i = 0; i < 10_000; i++) {
    ledger.finish(ledger.open(info(`/r${i % 3}`, 1, i)), "success", 200);
  }
  const a = metrics.render().replace(/^edgeworker_process_.*$/gm, "");
  const b = metrics.render().replace(/^edgeworker_process_.*$/gm, "");
  assert.equal(a, b);
  // 3 routes × 4 outcomes, whatever the number of requests.
  assert.equal(
    parseFamilies(a).get("edgeworker_requests_total")!.metrics.length,
    12,
  );
  metrics.close();
});
