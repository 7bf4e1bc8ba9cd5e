/**
 * The startup timeline end to end: the vLLM preset waits for a log file
 * that appears late, a model that loads slowly (the OpenAI stand-in), its
 * health URL, a two-round benchmark and a first request; `/status`,
 * `/metrics` and the log show how long each took, and the reports keep
 * `loadtime` as Python means it (process start to ready, 0 before).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startControlPlane } from "../dev/control_plane.ts";
import { startOpenAiServer } from "../dev/openai_server.ts";
import type { WorkerStatus } from "../lib/autoscaler/wire.ts";
import {
  type PhaseView,
  StartupTimeline,
  type TimelineView,
} from "../lib/model/timeline.ts";
import { findPreset } from "../workers/mod.ts";
import { post, waitFor } from "./helpers/http.ts";
import { captureLogs } from "./helpers/logs.ts";
import { stopWorker } from "./helpers/reporting.ts";
import { envelope, type Running, startWorker } from "./helpers/worker.ts";

const LOG_LATE_MS = 300;
const LOAD_MS = 400;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("timeline: /status, /metrics and the log show each startup phase with its duration; loadtime is process start to ready", async () => {
  await using logs = await captureLogs(["edgeworker", "startup"]);
  const dir = await Deno.makeTempDir({ prefix: "timeline_test_" });
  const logFile = join(dir, "vllm.log");
  const port = freePort();
  await using cp = await startControlPlane();
  let w: Running | undefined;
  let llm: Awaited<ReturnType<typeof startOpenAiServer>> | undefined;
  try {
    const config = findPreset("vllm")!.config({
      MODEL_SERVER_URL: `http://127.0.0.1:${port}`,
      MODEL_LOG: logFile,
      BENCHMARK_RUNS: "2",
      BENCHMARK_CONCURRENCY: "2",
    });
    w = await startWorker(config, {
      REPORT_ADDR: cp.url,
      EDGEWORKER_BENCHMARK: "force",
      EDGEWORKER_CANARY_IDLE_SECONDS: "0",
    });
    const worker = w;
    await new Promise((r) => setTimeout(r, LOG_LATE_MS));
    llm = await startOpenAiServer({
      port,
      logFile,
      startupDelayMs: LOAD_MS,
      tokensPerSecond: 10_000,
    });
    await waitFor(() => worker.lifecycle.ready, 10_000, "ready");
    const res = await post(
      worker.url,
      "/v1/completions",
      envelope({ prompt: "Hello", max_tokens: 3 }),
    );
    assert.equal(res.status, 200);
    await res.text();

    const status = await (await fetch(`${worker.url}/status`)).json();
    const t = status.startup as TimelineView;
    const phase = (name: string): PhaseView => {
      const p = t.phases.find((p) => p.phase === name);
      assert.ok(p, `phase ${name} in ${JSON.stringify(t.phases)}`);
      assert.ok(p.seconds !== null && p.ended_s !== null, `${name} ended`);
      assert.ok(
        Math.abs(p.ended_s - p.started_s - p.seconds) < 0.001,
        `${name} seconds`,
      );
      return p;
    };
    assert.deepEqual(
      t.phases.map((p) => p.phase),
      "log_file model_loading health benchmark public_key first_request"
        .split(" "),
    );
    const logWait = phase("log_file");
    assert.ok(logWait.seconds! >= (LOG_LATE_MS - 20) / 1000, "log file late");
    assert.equal(logWait.detail, logFile);
    const loading = phase("model_loading");
    assert.ok(loading.started_s >= logWait.ended_s! - 0.001);
    assert.ok(loading.seconds! >= (LOAD_MS - 50) / 1000, "slow load");
    assert.equal(loading.detail, "load line seen");
    const health = phase("health");
    assert.ok(health.ended_s! >= loading.ended_s! - 0.1, "200 once loaded");
    const bench = phase("benchmark");
    assert.equal(bench.detail, "measured");
    assert.ok(bench.started_s >= health.ended_s! - 0.001);
    assert.equal(t.benchmark_rounds.length, 2);
    for (const r of t.benchmark_rounds) {
      assert.equal(r.ok, 2);
      assert.ok(r.seconds > 0 && r.throughput > 0);
    }
    const first = phase("first_request");
    assert.equal(first.detail, "success 200");
    assert.ok(t.ready_s !== null && first.started_s >= t.ready_s);
    assert.ok(t.ready_s >= phase("public_key").ended_s!);

    // loadtime: process start to ready, as Python's model_loading_time.
    assert.ok(
      Math.abs(status.loadtime - t.ready_s) < 0.001,
      `loadtime ${status.loadtime} ready_s ${t.ready_s}`,
    );
    assert.ok(Math.abs(worker.lifecycle.loadtime - t.ready_s) < 0.001);

    const metrics = await (await fetch(`${worker.url}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(
        `^edgeworker_startup_phase_seconds\\{phase="benchmark"\\} ${bench.seconds}$`,
        "m",
      ),
    );

    const lines = logs.records.map((r) =>
      r.message.map((m) => typeof m === "string" ? m : String(m)).join("")
    );
    for (const p of t.phases) {
      assert.ok(
        lines.some((l) => l.startsWith(`Startup phase ${p.phase} took `)),
        `log line of ${p.phase}: ${lines.join(" | ")}`,
      );
    }
    assert.ok(
      lines.some((l) =>
        /^Ready [\d.]+ s after the process started: log_file /.test(l)
      ),
    );

    // Reports: loadtime 0 until ready, then the same figure in every report.
    await cp.waitFor(
      "status",
      (b) => (b as WorkerStatus).loadtime > 0,
      3000,
    );
    const seen = cp.statusReports.map((r) => (r.body as WorkerStatus).loadtime);
    const firstLoaded = seen.findIndex((l) => l > 0);
    assert.ok(firstLoaded > 0, "reports before ready");
    assert.ok(seen.slice(0, firstLoaded).every((l) => l === 0));
    assert.ok(
      seen.slice(firstLoaded).every((l) => l === worker.lifecycle.loadtime),
    );
  } finally {
    await stopWorker(w);
    await llm?.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("timeline: phases keep their first start and end, may overlap, and are listed in the phase order", () => {
  const clock = { now: 1_000_000 };
  const t = new StartupTimeline({
    startedAt: 1_000_000,
    now: () => clock.now,
  });
  t.begin("health", "http://m/health");
  clock.now += 500;
  t.begin("log_file", "/var/log/m.log");
  clock.now += 250;
  t.end("log_file");
  t.begin("model_loading");
  clock.now += 1000;
  t.end("model_loading", "load line seen");
  t.end("health", "first 200");
  clock.now += 5000;
  t.end("health", "later 200"); // only the first end counts
  t.begin("health"); // and the first start
  t.round({
    index: 1,
    seconds: 1.23456,
    ok: 2,
    failed: 0,
    throughput: 9.87654,
  });
  t.ready(7);
  t.ready(99); // only the first ready counts
  t.begin("first_request", "/v1/completions");
  const v = t.view();
  assert.equal(v.process_started_at, 1000);
  assert.equal(v.ready_s, 7);
  assert.deepEqual(v.phases, [
    {
      phase: "log_file",
      started_s: 0.5,
      ended_s: 0.75,
      seconds: 0.25,
      detail: "/var/log/m.log",
    },
    {
      phase: "model_loading",
      started_s: 0.75,
      ended_s: 1.75,
      seconds: 1,
      detail: "load line seen",
    },
    {
      phase: "health",
      started_s: 0,
      ended_s: 1.75,
      seconds: 1.75,
      detail: "first 200",
    },
    {
      phase: "first_request",
      started_s: 6.75,
      ended_s: null,
      seconds: null,
      detail: "/v1/completions",
    },
  ]);
  assert.deepEqual(v.benchmark_rounds, [
    { index: 1, seconds: 1.235, ok: 2, failed: 0, throughput: 9.877 },
  ]);
});
