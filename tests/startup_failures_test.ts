/**
 * The phase rule of startup errors, in-process against real files: before
 * the first ready a startup error (a Python traceback, an engine's failed
 * start, supervisord's `exited:` line of the program) is fatal at once,
 * with a message that says what failed; after ready it is logged, counted
 * in `/metrics`, and the worker stays ready.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { LogRecord } from "@logtape/logtape";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import {
  supervisorExitedLine,
  supervisorGaveUpLine,
  supervisorSpawnLines,
} from "../dev/_log.ts";
import { appendLog } from "./helpers/dev.ts";
import { captureLogs } from "./helpers/logs.ts";
import { samplesBy, scrape } from "./helpers/metrics.ts";
import { type Running, startWorker } from "./helpers/worker.ts";
import { waitFor } from "./helpers/http.ts";

const LOAD = "Application startup complete.";
const TB = "Traceback (most recent call last):";

interface Ctx {
  w: Running;
  log: string;
  supervisor: string;
  records: LogRecord[];
}

async function withWorker(
  config: Partial<WorkerConfig>,
  fn: (ctx: Ctx) => Promise<void>,
  /** supervisord's log as the worker finds it (absent when undefined). */
  supervisorBefore?: string[],
): Promise<void> {
  await using logs = await captureLogs();
  const dir = await Deno.makeTempDir({ prefix: "startup_failures_test_" });
  const log = join(dir, "model.log");
  const supervisor = join(dir, "supervisor", "supervisord.log");
  await Deno.writeTextFile(log, "");
  if (supervisorBefore) {
    await Deno.mkdir(join(dir, "supervisor"));
    await appendLog(supervisor, ...supervisorBefore);
  }
  let w: Running | undefined;
  try {
    w = await startWorker({
      modelServerUrl: "http://127.0.0.1:9",
      modelLogFile: log,
      logActions: {
        onLoad: [LOAD],
        onError: ["EngineDeadError"],
        onStartupError: [TB, "EngineCore failed to start."],
      },
      supervisorProgram: "vllm",
      handlers: [{ route: "/v1/completions" }],
      ...config,
    }, { EDGEWORKER_SUPERVISOR_LOG: supervisor });
    await fn({ w, log, supervisor, records: logs.records });
  } finally {
    await w?.shutdown();
    if (w) await Deno.remove(w.dir, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
}

async function ready(
  w: Running,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${w.url}/ready`);
  return { status: r.status, body: await r.json() };
}

/** `edgeworker_model_log_errors_total` by `log/phase`. */
async function logErrors(w: Running): Promise<Record<string, number>> {
  const { families } = await scrape(w.url);
  return samplesBy(families, "edgeworker_model_log_errors_total", [
    "log",
    "phase",
  ]);
}

/** Waits for the fatal error; returns its message and how long it took. */
async function fatalWithin(
  w: Running,
  since: number,
): Promise<[string, number]> {
  await waitFor(() => w.lifecycle.state === "error", 3000, "error");
  const took = performance.now() - since;
  assert.equal(w.lifecycle.fatal, true);
  const r = await ready(w);
  assert.equal(r.status, 503);
  return [String(r.body.error_msg), took];
}

Deno.test("startup: a traceback while loading is fatal at once, its exception line the message", async () => {
  await withWorker({}, async ({ w, log }) => {
    const t0 = performance.now();
    // vLLM's engine-core lines carry a process tag.
    await appendLog(
      log,
      "(EngineCore_DP0 pid=282) INFO 12-01 10:00:00 [core.py:71] Initializing a V1 LLM engine",
      `(EngineCore_DP0 pid=282) ${TB}`,
      '(EngineCore_DP0 pid=282)   File "/usr/lib/python3.12/site-packages/transformers/utils/hub.py", line 470, in cached_files',
      "(EngineCore_DP0 pid=282)     raise EnvironmentError(",
      "(EngineCore_DP0 pid=282) OSError: Qwen/Nope is not a local folder and is not a valid model identifier",
    );
    const [msg, took] = await fatalWithin(w, t0);
    assert.equal(
      msg,
      "Model server failed to start: OSError: Qwen/Nope is not a local folder and is not a valid model identifier",
    );
    assert.ok(took < 2000, `${took} ms`);
    assert.deepEqual((await logErrors(w))["model/startup"], 1);
    // A later load line brings nothing back.
    await appendLog(log, LOAD);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(w.lifecycle.state, "error");
  });
});

Deno.test("startup: a traceback whose exception line never comes is still reported", async () => {
  await withWorker({}, async ({ w, log }) => {
    const t0 = performance.now();
    await appendLog(log, TB, '  File "x.py", line 1, in <module>');
    const [msg, took] = await fatalWithin(w, t0);
    assert.equal(msg, `Model server failed to start: ${TB}`);
    assert.ok(took < 2000, `${took} ms`);
  });
});

Deno.test("serving: a traceback after ready is logged and counted; the worker stays ready", async () => {
  await withWorker({}, async ({ w, log, records }) => {
    await appendLog(log, LOAD);
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    await appendLog(
      log,
      TB,
      '  File "/app/serving.py", line 12, in create_completion',
      "ValueError: invalid logit bias",
      "EngineCore failed to start.",
    );
    await waitFor(
      async () => (await logErrors(w))["model/serving"] === 2,
      3000,
      "two serving errors counted",
    );
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(w.lifecycle.state, "ready");
    assert.equal((await ready(w)).status, 200);
    assert.ok(
      records.some((r) =>
        r.message.map(String).join("").includes(`health check decides): ${TB}`)
      ),
    );
    // An onError line stays fatal at any time.
    await appendLog(log, "vllm.v1.engine.exceptions.EngineDeadError: gone");
    await waitFor(() => w.lifecycle.state === "error", 3000, "error");
    assert.equal(w.lifecycle.fatal, true);
  });
});

Deno.test("supervisord: the program's exit in its own log (created late) is fatal while loading; other programs are not", async () => {
  await withWorker({}, async ({ w, supervisor }) => {
    // The directory and file appear after the worker started.
    await Deno.mkdir(join(supervisor, ".."), { recursive: true });
    await appendLog(
      supervisor,
      ...supervisorSpawnLines("vllm", 12),
      supervisorExitedLine("jupyter"),
      supervisorExitedLine("vllm-omni"),
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(w.lifecycle.state, "loading");
    const t0 = performance.now();
    await appendLog(supervisor, supervisorExitedLine("vllm"));
    const [msg, took] = await fatalWithin(w, t0);
    assert.match(
      msg,
      /^supervisord: WARN exited: vllm \(exit status 1; not expected\)$/,
    );
    assert.ok(took < 2000, `${took} ms`);
    assert.equal((await logErrors(w))["supervisor/startup"], 1);
  });
});

Deno.test("supervisord: an exit after ready is counted (supervisord restarts it); giving up is fatal", async () => {
  // Lines of an earlier boot are never read: the log is read from its end.
  await withWorker({}, async ({ w, log, supervisor }) => {
    await appendLog(log, LOAD);
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    await appendLog(supervisor, supervisorExitedLine("vllm"));
    await waitFor(
      async () => (await logErrors(w))["supervisor/serving"] === 1,
      3000,
      "counted",
    );
    assert.equal(w.lifecycle.state, "ready");
    await appendLog(supervisor, supervisorGaveUpLine("vllm"));
    await waitFor(() => w.lifecycle.state === "error", 3000, "error");
    assert.equal(w.lifecycle.fatal, true);
    assert.match(w.lifecycle.errorMsg, /gave up: vllm entered FATAL state/);
  }, [supervisorGaveUpLine("vllm"), supervisorExitedLine("vllm")]);
});

Deno.test("supervisord: without a program in the config its log is not read", async () => {
  await withWorker(
    { supervisorProgram: undefined },
    async ({ w, log, supervisor }) => {
      await Deno.mkdir(join(supervisor, ".."), { recursive: true });
      await Deno.writeTextFile(supervisor, "");
      await new Promise((r) => setTimeout(r, 200));
      await appendLog(supervisor, supervisorExitedLine("vllm"));
      await appendLog(log, LOAD);
      await waitFor(() => w.lifecycle.ready, 3000, "ready");
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(w.lifecycle.state, "ready");
      assert.equal((await logErrors(w))["supervisor/startup"], 0);
    },
  );
});

Deno.test("startup: vLLM's `EngineCore failed to start.` reports the exception of the traceback that follows it", async () => {
  await withWorker({}, async ({ w, log }) => {
    const t0 = performance.now();
    const tag = "(EngineCore_DP0 pid=282)";
    await appendLog(
      log,
      `${tag} ERROR 12-01 10:00:00 [core.py:700] EngineCore failed to start.`,
      `${tag} ${TB}`,
      `${tag}   File "/usr/lib/python3.12/site-packages/vllm/v1/engine/core.py", line 691, in run_engine_core`,
      `${tag} ValueError: No available memory for the cache blocks. Try increasing \`gpu_memory_utilization\``,
    );
    const [msg, took] = await fatalWithin(w, t0);
    assert.equal(
      msg,
      "Model server failed to start: ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization`",
    );
    assert.ok(took < 2000, `${took} ms`);
  });
});

Deno.test("startup: a failed-start line without a traceback is the message itself", async () => {
  await withWorker({}, async ({ w, log }) => {
    const t0 = performance.now();
    const line =
      "(EngineCore_DP0 pid=282) ERROR 12-01 10:00:00 [core.py:700] EngineCore failed to start.";
    await appendLog(
      log,
      line,
      "INFO 12-01 10:00:01 [launcher.py:80] shutting down",
    );
    const [msg, took] = await fatalWithin(w, t0);
    assert.equal(msg, line);
    assert.ok(took < 2000, `${took} ms`);
  });
});
