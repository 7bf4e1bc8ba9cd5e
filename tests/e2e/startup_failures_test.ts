/**
 * End to end, the phase rule of startup errors for every preset family:
 * `main.ts run --preset <name>` against its stand-in, reporting to the
 * control-plane stand-in.
 *
 * - While the model loads, a failed start (a Python traceback; llama.cpp:
 *   its load-failure line) reaches the autoscaler as `error_msg` within
 *   2 s, and so does supervisord's `exited: <program>` line in its own log.
 * - The stand-in writes its log as base-image's log-tee does (colours, `\r`
 *   progress bars, rotation by rename while it loads): the worker follows
 *   the rotated file and becomes ready.
 * - After ready, a traceback (and supervisord's exit line) is counted in
 *   `/metrics` and the worker stays ready.
 */
import assert from "node:assert/strict";
import { appendLog } from "../helpers/dev.ts";
import { samplesBy, scrape } from "../helpers/metrics.ts";
import { startComfyUiServer } from "../../dev/comfyui_server.ts";
import { startHelloWorldServer } from "../../dev/hello_world_server.ts";
import { supervisorExitedLine } from "../../dev/_log.ts";
import { startOpenAiServer } from "../../dev/openai_server.ts";
import type { StandInOptions, StandInServer } from "../../dev/_standin.ts";
import { startTgiServer } from "../../dev/tgi_server.ts";
import {
  allScenarios,
  inTempDir,
  type PresetWorker,
  type ScenarioContext,
} from "./_presets.ts";

const TB = "Traceback (most recent call last):";

interface Case {
  preset: string;
  start: (o: StandInOptions) => Promise<StandInServer>;
  /** Extra worker env (e.g. the engine's model variable). */
  env?: Record<string, string>;
  /** supervisord program on Vast's image, if the preset names one. */
  program?: string;
  /** A failed start written to the model log while loading, and the
   * `error_msg` it must give. */
  failure: { lines: string[]; message: RegExp };
}

const pythonFailure = {
  lines: [
    TB,
    '  File "/usr/lib/python3.12/site-packages/transformers/utils/hub.py", line 470, in cached_files',
    "    raise EnvironmentError(",
    "OSError: Qwen/Nope is not a local folder and is not a valid model identifier",
  ],
  message:
    /^Model server failed to start: OSError: Qwen\/Nope is not a local folder/,
};

const CASES: Case[] = [
  {
    preset: "vllm",
    start: (o) =>
      startOpenAiServer({ ...o, flavor: "vllm", tokensPerSecond: 5000 }),
    env: { VLLM_MODEL: "Qwen/Qwen3-0.6B" },
    program: "vllm",
    failure: {
      // vLLM's engine-core process tags each of its lines.
      lines: pythonFailure.lines.map((l) => `(EngineCore_DP0 pid=282) ${l}`),
      message: pythonFailure.message,
    },
  },
  {
    preset: "sglang",
    start: (o) =>
      startOpenAiServer({ ...o, flavor: "sglang", tokensPerSecond: 5000 }),
    program: "sglang",
    failure: pythonFailure,
  },
  {
    preset: "llama_cpp",
    start: (o) =>
      startOpenAiServer({ ...o, flavor: "llama_cpp", tokensPerSecond: 5000 }),
    program: "llama",
    // C++: no traceback; its own failed-load line.
    failure: {
      lines: [
        "llama_model_load: error loading model: unknown model architecture: 'glm5next'",
      ],
      message: /^llama_model_load: error loading model: unknown model/,
    },
  },
  {
    preset: "tgi",
    start: (o) => startTgiServer({ ...o, tokensPerSecond: 5000 }),
    failure: pythonFailure,
  },
  {
    preset: "comfyui",
    start: (o) => startComfyUiServer({ ...o, secondsPerImage: 0.02 }),
    program: "api-wrapper",
    failure: pythonFailure,
  },
  {
    preset: "hello_world",
    start: (o) => startHelloWorldServer(o),
    failure: pythonFailure,
  },
];

const COMFY_BENCH = {
  BENCHMARK_TEST_WIDTH: "64",
  BENCHMARK_TEST_HEIGHT: "64",
  BENCHMARK_TEST_STEPS: "1",
};

/** Where a scenario's stand-in writes its model log and supervisord's. */
function logPaths(dir: string): { logFile: string; supervisorLog: string } {
  return {
    logFile: `${dir}/model.log`,
    supervisorLog: `${dir}/supervisord.log`,
  };
}

/**
 * Starts `c`'s stand-in with `options` (writing the logs of
 * {@linkcode logPaths}) and the preset's worker against it; both are
 * stopped afterwards.
 */
async function startServing(
  ctx: ScenarioContext,
  c: Case,
  options: StandInOptions,
): Promise<
  { w: PresetWorker; server: StandInServer } & ReturnType<typeof logPaths>
> {
  const logs = logPaths(ctx.dir);
  const server = await c.start({ ...logs, ...options });
  ctx.defer(() => server.close());
  const w = await ctx.startAgainst(server.url, logs.logFile, c.preset, {
    EDGEWORKER_SUPERVISOR_LOG: logs.supervisorLog,
    ...(c.preset === "comfyui" ? COMFY_BENCH : {}),
    ...c.env,
  });
  return { w, server, ...logs };
}

/** Waits until `w` has taken its place in the log and is loading. */
async function loading(w: PresetWorker): Promise<void> {
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      if ((await w.status()).state === "loading") return;
    } catch { /* not listening yet */ }
    assert.ok(Date.now() < deadline, "worker never loading");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * `error_msg` matching `re` reaches the control plane within 2 s of `t0`
 * (when the line was written); prints how long `what` took.
 */
async function reportedWithin2s(
  w: PresetWorker,
  c: Case,
  re: RegExp,
  t0: number,
  what: string,
): Promise<void> {
  await w.cp.waitFor(
    "status",
    (b) => re.test(String((b as { error_msg?: string }).error_msg ?? "")),
    5000,
  );
  const ms = performance.now() - t0;
  assert.ok(ms < 2000, `${c.preset}: error_msg after ${ms.toFixed(0)} ms`);
  console.log(`${c.preset}: ${what} reported after ${ms.toFixed(0)} ms`);
}

/** `edgeworker_model_log_errors_total` for `key` (`log/phase`). */
async function logErrors(w: PresetWorker, key: string): Promise<number> {
  const { families } = await scrape(w.base);
  return samplesBy(families, "edgeworker_model_log_errors_total", [
    "log",
    "phase",
  ])[key] ?? NaN;
}

function whileLoading(c: Case): Promise<void> {
  return inTempDir(`${c.preset}-loading`, async (ctx) => {
    // Loads for longer than the test: only the failure can end it.
    const { w, logFile } = await startServing(ctx, c, {
      startupDelayMs: 120_000,
    });
    await loading(w);
    const t0 = performance.now();
    await appendLog(logFile, ...c.failure.lines);
    await reportedWithin2s(w, c, c.failure.message, t0, "failed start");
    assert.match(await w.waitError(), c.failure.message);
  });
}

function supervisorWhileLoading(c: Case): Promise<void> {
  return inTempDir(`${c.preset}-supervisord`, async (ctx) => {
    const { w, supervisorLog } = await startServing(ctx, c, {
      startupDelayMs: 120_000,
    });
    await loading(w);
    // Another program's exit is not the model server's.
    await appendLog(supervisorLog, supervisorExitedLine("jupyter"));
    const t0 = performance.now();
    await appendLog(supervisorLog, supervisorExitedLine(c.program!));
    const re = new RegExp(
      `^supervisord: WARN exited: ${c.program} \\(exit status 1; not expected\\)$`,
    );
    await reportedWithin2s(w, c, re, t0, "supervisord exit");
    assert.equal(await logErrors(w, "supervisor/startup"), 1);
  });
}

function afterReady(c: Case): Promise<void> {
  return inTempDir(`${c.preset}-serving`, async (ctx) => {
    await Deno.writeTextFile(
      logPaths(ctx.dir).logFile,
      `${TB}\nRuntimeError: previous boot\n`,
    );
    // log-tee at a small scale, with a progress bar redrawn every 20 ms
    // while loading: the log is rotated by rename before the ready line.
    const { w, server, logFile, supervisorLog } = await startServing(ctx, c, {
      startupDelayMs: 4000,
      logTee: {
        mode: "log-tee@base-image-a7552d1",
        maxBytes: 4096,
        keepBytes: 1024,
        checkBytes: 512,
      },
    });
    await w.waitReady(30000);
    assert.ok(server.logRotations >= 1, `rotations: ${server.logRotations}`);

    // One request's traceback once serving: logged, counted, still ready.
    await appendLog(
      logFile,
      TB,
      '  File "/app/serving.py", line 12, in create',
      "ValueError: invalid logit bias",
    );
    if (c.program) {
      // supervisord restarts it: the health check decides, not the line.
      await appendLog(supervisorLog, supervisorExitedLine(c.program));
    }
    const key = c.preset === "llama_cpp"
      ? "supervisor/serving"
      : "model/serving";
    // The model log and supervisord's are tailed apart: wait for each.
    const keys = c.program && key !== "supervisor/serving"
      ? [key, "supervisor/serving"]
      : [key];
    const deadline = Date.now() + 5000;
    for (const k of keys) {
      while ((await logErrors(w, k)) < 1) {
        assert.ok(Date.now() < deadline, `${c.preset}: ${k} not counted`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await w.assertReady();
    for (const k of keys) assert.equal(await logErrors(w, k), 1, k);
    assert.equal(await logErrors(w, "model/startup"), 0);
  });
}

Deno.test("startup failures: a failed start is reported within 2 s; once ready, errors are counted and the log followed across rotation", async (t) => {
  // One preset at a time: each scenario runs a worker subprocess.
  for (const c of CASES) {
    await t.step(c.preset, async () => {
      await allScenarios([
        whileLoading(c),
        afterReady(c),
        ...(c.program ? [supervisorWhileLoading(c)] : []),
      ]);
    });
  }
});
