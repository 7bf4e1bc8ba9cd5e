/**
 * The generation canary end to end: the vLLM preset against the OpenAI
 * stand-in (vLLM's routes, log lines and `/health`), reporting to the
 * control-plane stand-in. Generation hangs while `/health` stays 200: the
 * worker turns not ready within the canary's deadline and says so to the
 * autoscaler, and is ready again once generation works. Canaries are not
 * client traffic and never share the engine with a client request.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type ControlPlane, startControlPlane } from "../dev/control_plane.ts";
import { type OpenAiServer, startOpenAiServer } from "../dev/openai_server.ts";
import { EnvError } from "../lib/config/env.ts";
import type { WorkerStatus } from "../lib/autoscaler/wire.ts";
import { Worker } from "../lib/worker/worker.ts";
import { findPreset } from "../workers/mod.ts";
import { post, waitFor } from "./helpers/http.ts";
import { stopWorker } from "./helpers/reporting.ts";
import { envelope, type Running, startWorker } from "./helpers/worker.ts";

const IDLE_S = 0.3;
const DEADLINE_S = 1;

interface Setup {
  llm: OpenAiServer;
  cp: ControlPlane;
  w: Running;
}

async function withCanaryWorker(
  env: Record<string, string>,
  fn: (s: Setup) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "canary_test_" });
  const llm = await startOpenAiServer({
    logFile: join(dir, "vllm.log"),
    tokensPerSecond: 200,
  });
  const cp = await startControlPlane();
  let w: Running | undefined;
  try {
    const config = findPreset("vllm")!.config({
      MODEL_SERVER_URL: llm.url,
      MODEL_LOG: join(dir, "vllm.log"),
    });
    w = await startWorker(config, {
      REPORT_ADDR: cp.url,
      EDGEWORKER_BENCHMARK: "skip",
      EDGEWORKER_CANARY_IDLE_SECONDS: String(IDLE_S),
      EDGEWORKER_CANARY_DEADLINE_SECONDS: String(DEADLINE_S),
      ...env,
    });
    const worker = w;
    await waitFor(() => worker.lifecycle.ready, 5000, "ready");
    await fn({ llm, cp, w: worker });
  } finally {
    await stopWorker(w);
    await cp.close();
    await llm.close();
    await Deno.remove(dir, { recursive: true });
  }
}

// deno-lint-ignore no-explicit-any
type Json = any;

async function ready(w: Running): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${w.url}/ready`);
  return { status: res.status, body: await res.json() };
}

async function status(w: Running): Promise<Json> {
  return await (await fetch(`${w.url}/status`)).json();
}

async function metrics(w: Running): Promise<string> {
  return await (await fetch(`${w.url}/metrics`)).text();
}

const reportOf = (b: unknown) => b as WorkerStatus;

Deno.test("canary: generation that hangs behind a healthy /health makes the worker not ready within the deadline, reported; it is ready again once generation works", async () => {
  await withCanaryWorker({ EDGEWORKER_CANARY_FAILURES: "1" }, async (s) => {
    const { llm, cp, w } = s;
    // The first canary passes after the idle time.
    await waitFor(
      async () => (await ready(w)).body.health.generation.status === "ok",
      3000,
      "first canary",
    );
    const first = await ready(w);
    assert.equal(first.status, 200);
    assert.equal(first.body.health.alive, "ok");
    assert.equal(first.body.health.engine.status, "ok");
    assert.equal(llm.lastBody && (llm.lastBody as Json).max_tokens, 1);
    const loadtime = w.lifecycle.loadtime;

    llm.setGenerationHangs(true);
    const hung = Date.now();
    await waitFor(() => w.lifecycle.state === "error", 5000, "not ready");
    const noticed = (Date.now() - hung) / 1000;
    // A canary goes after the idle time and fails at its deadline; the
    // sweep ticks add at most a quarter of the idle time (plus scheduling).
    assert.ok(
      noticed <= IDLE_S + DEADLINE_S + 0.75,
      `not ready after ${noticed} s`,
    );
    const down = await ready(w);
    assert.equal(down.status, 503);
    assert.equal(down.body.health.engine.status, "ok", "/health still 200");
    assert.equal(down.body.health.generation.status, "failing");
    assert.match(down.body.health.generation.reason, /no answer within 1 s/);
    assert.match(
      down.body.error_msg,
      /^Generation canary failed 1 times in a row at http:\/\/127\.0\.0\.1:\d+\/v1\/completions: no answer within 1 s$/,
    );
    const failing = await cp.waitFor(
      "status",
      (b) => reportOf(b).error_msg.startsWith("Generation canary failed"),
      3000,
    );
    assert.match(
      await metrics(w),
      /^edgeworker_health_up\{level="generation"\} 0$/m,
    );

    llm.setGenerationHangs(false);
    await waitFor(() => w.lifecycle.ready, 5000, "ready again");
    const cleared = () =>
      cp.statusReports.find((r) =>
        r.at >= failing.at && reportOf(r.body).error_msg === ""
      );
    await waitFor(() => cleared() !== undefined, 3000, "error cleared");
    const recovered = cleared()!;
    assert.ok(recovered, "a report with the error cleared");
    assert.equal((await ready(w)).status, 200);
    assert.match(
      await metrics(w),
      /^edgeworker_health_up\{level="generation"\} 1$/m,
    );
    // A recovery is no new load: loadtime means what Python means.
    assert.equal(w.lifecycle.loadtime, loadtime);
    assert.equal(reportOf(recovered.body).loadtime, loadtime);

    // Canaries are not client traffic: nothing in the books or reports.
    const st = await status(w);
    assert.ok(st.canary.passed >= 2, `passed ${st.canary.passed}`);
    assert.ok(st.canary.failed >= 1);
    assert.equal(w.ledger.receivedCount, 0);
    for (const r of cp.statusReports) {
      const b = reportOf(r.body);
      assert.equal(b.num_requests_recieved, 0);
      assert.equal(b.new_load, 0);
      assert.equal(b.cur_load, 0);
    }
    assert.equal(cp.deleteReports.length, 0);
  });
});

Deno.test("canary: one failure below the threshold keeps the worker ready; the threshold's failure makes it not ready", async () => {
  await withCanaryWorker({ EDGEWORKER_CANARY_FAILURES: "2" }, async (s) => {
    const { llm, w } = s;
    await waitFor(
      async () => (await status(w)).canary.passed >= 1,
      3000,
      "first canary",
    );
    llm.setGenerationHangs(true);
    await waitFor(
      async () => (await status(w)).canary.failed >= 1,
      5000,
      "one failure",
    );
    const st = await status(w);
    assert.equal(st.health.generation.status, "failing");
    assert.equal(st.health.generation.failures_in_a_row, 1);
    assert.equal(st.state, "ready", "one failure is below the threshold");
    await waitFor(() => w.lifecycle.state === "error", 5000, "second failure");
    assert.equal((await status(w)).health.generation.failures_in_a_row, 2);
    llm.setGenerationHangs(false);
    await waitFor(() => w.lifecycle.ready, 5000, "ready again");
  });
});

Deno.test("canary: never runs while a client request is in flight, and a client request cancels one in flight (counted neither way)", async () => {
  await withCanaryWorker(
    { EDGEWORKER_CANARY_DEADLINE_SECONDS: "5" },
    async (s) => {
      const { llm, w } = s;
      await waitFor(
        async () => (await status(w)).canary.passed >= 1,
        3000,
        "first canary",
      );
      // A 1 s stream (200 tokens at 200 tokens/s): over three idle times.
      const res = await post(
        w.url,
        "/v1/completions",
        envelope({ prompt: "Hello", max_tokens: 200, stream: true }),
      );
      assert.equal(res.status, 200);
      await new Promise((r) => setTimeout(r, 50));
      const during = llm.requests;
      await res.text();
      assert.equal(llm.requests, during, "no canary while the stream ran");

      // Generation hangs; a canary is in flight when a client request comes.
      llm.setGenerationHangs(true);
      await waitFor(
        async () => (await status(w)).canary.running,
        3000,
        "a canary in flight",
      );
      const client = post(
        w.url,
        "/v1/completions",
        envelope({ prompt: "Hello", max_tokens: 2 }),
      );
      await waitFor(
        async () => (await status(w)).canary.skipped === 1,
        3000,
        "the canary cancelled",
      );
      const st = await status(w);
      assert.equal(st.canary.failed, 0, "a cancelled canary is no failure");
      assert.equal(st.state, "ready");
      llm.setGenerationHangs(false);
      const answer = await client;
      assert.equal(answer.status, 200);
      await answer.body?.cancel();
    },
  );
});

Deno.test("canary: bad EDGEWORKER_CANARY_* and EDGEWORKER_STALL_* values are errors naming the variable", async () => {
  const config = findPreset("vllm")!.config({});
  const cases: [Record<string, string>, RegExp][] = [
    [
      { EDGEWORKER_CANARY_IDLE_SECONDS: "soon" },
      /EDGEWORKER_CANARY_IDLE_SECONDS/,
    ],
    [
      { EDGEWORKER_CANARY_IDLE_SECONDS: "-1" },
      /EDGEWORKER_CANARY_IDLE_SECONDS/,
    ],
    [
      { EDGEWORKER_CANARY_DEADLINE_SECONDS: "0" },
      /EDGEWORKER_CANARY_DEADLINE_SECONDS/,
    ],
    [{ EDGEWORKER_CANARY_FAILURES: "1.5" }, /EDGEWORKER_CANARY_FAILURES/],
    [{ EDGEWORKER_STALL_SECONDS: "x" }, /EDGEWORKER_STALL_SECONDS/],
    [{ EDGEWORKER_STALL_ABORT: "maybe" }, /EDGEWORKER_STALL_ABORT/],
  ];
  for (const [env, name] of cases) {
    await assert.rejects(
      new Worker(config).start({ env: { UNSECURED: "true", ...env }, port: 0 }),
      (e: unknown) => e instanceof EnvError && name.test(e.message),
      JSON.stringify(env),
    );
  }
  // Turning on a canary that the config has no request for.
  await assert.rejects(
    new Worker({
      modelServerUrl: "http://127.0.0.1:9",
      handlers: [{ route: "/generate" }],
    }).start({
      env: { UNSECURED: "true", EDGEWORKER_CANARY_IDLE_SECONDS: "5" },
      port: 0,
    }),
    (e: unknown) =>
      e instanceof EnvError &&
      /EDGEWORKER_CANARY_IDLE_SECONDS: this config has no canary request/
        .test(e.message),
  );
});
