/**
 * End to end, the ComfyUI presets (comfyui, wan, ace) against lib/dev's
 * comfyui-api-wrapper stand-in, current and older wrapper versions:
 * `main.ts run --preset <name>` subprocesses with signed requests from the
 * control-plane stand-in, run at once.
 */
import assert from "node:assert/strict";
import { appendLog } from "../helpers/dev.ts";
import { samplesBy, scrape } from "../helpers/metrics.ts";
import { text2ImageWorkflow } from "../../dev/_comfy_api.ts";
import {
  type ComfyUiServer,
  type ComfyUiServerOptions,
  startComfyUiServer,
} from "../../dev/comfyui_server.ts";
import { aceWorkflow } from "../../workers/ace.ts";
import { wanWorkflow } from "../../workers/wan.ts";
import { delay } from "../../lib/std/async.ts";
import { post, waitFor } from "../helpers/http.ts";
import {
  allScenarios,
  inTempDir,
  type PresetWorker,
  type ScenarioContext,
} from "./_presets.ts";

interface ComfyResult {
  status: string;
  message: string;
  output: { filename: string; output_type: string }[];
}

/** A small SD graph: 512×512, batch 2, 30 steps (= 300 units). */
const SD_WORKFLOW = text2ImageWorkflow(
  { seed: 5, steps: 30, batch_size: 2 },
  "e2e",
);

/** A graph ComfyUI refuses (no output node). */
const NO_OUTPUT = {
  input: {
    workflow_json: {
      "4": {
        class_type: "CheckpointLoaderSimple",
        inputs: { ckpt_name: "missing.safetensors" },
      },
    },
  },
};

/** The worker's `edgeworker_requests_total` for `/generate/sync`, by outcome. */
async function outcomes(w: PresetWorker): Promise<Record<string, number>> {
  const { families } = await scrape(w.base);
  return samplesBy(families, "edgeworker_requests_total", ["outcome"], {
    route: "/generate/sync",
  });
}

/**
 * Starts the wrapper stand-in with `options`, writing
 * `<dir>/api-wrapper.log` (closed afterwards), and the `preset` worker
 * against it with `env(comfy)` on top.
 */
async function startWithComfy(
  ctx: ScenarioContext,
  preset: string,
  options: ComfyUiServerOptions,
  env: (comfy: ComfyUiServer) => Record<string, string> = () => ({}),
): Promise<{ comfy: ComfyUiServer; w: PresetWorker; logFile: string }> {
  const logFile = `${ctx.dir}/api-wrapper.log`;
  const comfy = await startComfyUiServer({ logFile, ...options });
  ctx.defer(() => comfy.close());
  const w = await ctx.start(preset, {
    MODEL_SERVER_URL: comfy.url,
    MODEL_LOG: logFile,
    ...env(comfy),
  });
  return { comfy, w, logFile };
}

/** Checks `res` is the wrapper's `completed` answer with `status`; returns it. */
async function completed(res: Response, status = 200): Promise<ComfyResult> {
  assert.equal(res.status, status);
  const body = await res.json() as ComfyResult;
  assert.equal(body.status, "completed");
  return body;
}

/** The wrapper crashes: the worker reports the backend unrecoverable. */
async function crashIsFatal(comfy: ComfyUiServer, w: PresetWorker) {
  await comfy.crash();
  assert.match(await w.waitError(), /BACKEND_UNRECOVERABLE/);
}

function comfyuiScenario(): Promise<void> {
  return inTempDir("comfyui", async (ctx) => {
    const { comfy, w, logFile } = await startWithComfy(ctx, "comfyui", {
      secondsPerImage: 0.02,
      maxQueueSize: 1,
    }, (comfy) => ({
      COMFYUI_API_BASE: comfy.comfyUrl,
      BENCHMARK_RUNS: "2",
      BENCHMARK_TEST_WIDTH: "256",
      BENCHMARK_TEST_HEIGHT: "256",
      BENCHMARK_TEST_STEPS: "10",
      MODEL_INFO_LOG_MSGS: "e2e-marker",
    }));
    await w.waitBenchmarked();
    const bench = comfy.lastBody as {
      input: { modifier: string; modifications: Record<string, unknown> };
    };
    assert.equal(bench.input.modifier, "Text2Image");
    assert.equal(bench.input.modifications.width, 256);
    assert.equal(bench.input.modifications.steps, 10);

    // Two at once (the worker queues them, FIFO): 100 units each, as the
    // Python worker counts a job, whatever its size.
    const [big, graph] = await Promise.all([
      w.call("/generate/sync", {
        input: {
          modifier: "Text2Image",
          modifications: { prompt: "a cat", width: 1024, height: 1024 },
        },
      }),
      w.call("/generate/sync", { input: { workflow_json: SD_WORKFLOW } }),
    ]);
    assert.equal((await completed(big)).output.length, 1);
    const graphBody = await completed(graph);
    assert.equal(graphBody.output.length, 2);
    assert.match(graphBody.output[0].filename, /^e2e_\d+_\.png$/);

    // A bare body is wrapped for the wrapper: 100 units.
    const bare = await w.call("/generate/sync", {
      modifier: "Text2Image",
      modifications: { prompt: "a dog" },
    });
    await completed(bare);
    assert.ok((comfy.lastBody as { input?: unknown }).input);

    // A workflow ComfyUI refuses fails that job only (100): the current
    // wrapper's 500, relayed, and an error in the ledger.
    const broken = await w.call("/generate/sync", NO_OUTPUT);
    assert.equal(broken.status, 500);
    const brokenBody = await broken.json() as ComfyResult;
    assert.equal(brokenBody.status, "failed");
    assert.match(brokenBody.message, /ComfyUI node errors/);

    // The wrapper's queue is full (another client's job): its 503 and
    // Retry-After reach the client; an error, not a served job.
    comfy.setSecondsPerImage(1);
    const other = post(comfy.url, "/generate/sync", {
      input: { modifier: "Text2Image" },
    });
    const requestsBefore = comfy.requests;
    await waitFor(() => comfy.requests > requestsBefore, 2000);
    const full = await w.call("/generate/sync", {
      input: { modifier: "Text2Image" },
    });
    assert.equal(full.status, 503);
    assert.equal(full.headers.get("retry-after"), "5");
    const fullBody = await full.json() as ComfyResult;
    assert.equal(fullBody.status, "failed");
    assert.match(fullBody.message, /^Worker at capacity/);
    await (await other).body?.cancel();
    comfy.setSecondsPerImage(0.02);

    await w.waitNewLoad(100 + 100 + 100 + 100 + 100);
    assert.deepEqual(await outcomes(w), {
      success: 3,
      error: 2,
      cancelled: 0,
      rejected: 0,
    });

    // ComfyUI's per-request validation error is not fatal.
    await appendLog(
      logFile,
      "Failed to validate prompt for output 9:",
      "* CheckpointLoaderSimple 4:",
      "  - Value not in list: ckpt_name: 'missing.safetensors' not in []",
      "INFO:main:e2e-marker after the validation error",
    );
    await w.waitOutput("e2e-marker after the validation error");
    await w.assertReady();

    await crashIsFatal(comfy, w);
  });
}

function wanScenario(): Promise<void> {
  return inTempDir("wan", async (ctx) => {
    const { comfy, w } = await startWithComfy(ctx, "wan", {
      secondsPerImage: 0.02,
    });
    await w.waitBenchmarked();
    // The built-in benchmark is a Wan 2.2 graph.
    const bench = comfy.lastBody as {
      input: { workflow_json: Record<string, { class_type: string }> };
    };
    assert.equal(
      bench.input.workflow_json["59"].class_type,
      "EmptyHunyuanLatentVideo",
    );
    assert.equal(comfy.requests, 2, "a warm-up and one run");

    const r = await w.call("/generate/sync", {
      input: { workflow_json: wanWorkflow("a paper boat on a river") },
    });
    const body = await completed(r);
    assert.match(body.output[0].filename, /\.mp4$/);
    await w.waitNewLoad(10000);

    await crashIsFatal(comfy, w);
  });
}

function aceScenario(): Promise<void> {
  return inTempDir("ace", async (ctx) => {
    // A custom benchmark workflow from a file: a 30 s song.
    const custom = aceWorkflow("lo-fi, piano", "[inst]");
    (custom["17"] as { inputs: { seconds: number } }).inputs.seconds = 30;
    await Deno.writeTextFile(`${ctx.dir}/bench.json`, JSON.stringify(custom));
    const { comfy, w } = await startWithComfy(ctx, "ace", {
      secondsPerImage: 0.02,
    }, () => ({ BENCHMARK_JSON_PATH: `${ctx.dir}/bench.json` }));
    await w.waitBenchmarked();
    const bench = comfy.lastBody as {
      input: { request_id: string; workflow_json: typeof custom };
    };
    assert.deepEqual(bench.input.workflow_json, custom);
    assert.match(bench.input.request_id, /^benchmark-/);

    // A bare body is wrapped; every song is 1000 units.
    const r = await w.call("/generate/sync", {
      workflow_json: aceWorkflow("funk", "[verse]\nla la la"),
    });
    const body = await completed(r);
    assert.match(body.output[0].filename, /\.mp3$/);
    assert.equal(body.output[0].output_type, "audio");
    await w.waitNewLoad(1000);

    await crashIsFatal(comfy, w);
  });
}

Deno.test("comfyui, wan and ace presets serve, count and fail end to end", async () => {
  await allScenarios([comfyuiScenario(), wanScenario(), aceScenario()]);
});

/**
 * A wrapper older than 2025-12-05 (no ready line, `/health` always
 * healthy, failed jobs HTTP 200) in front of a ComfyUI still loading:
 * ready only once ComfyUI answers, and a failed job is an error.
 */
function oldWrapperScenario(): Promise<void> {
  return inTempDir("comfyui-old", async (ctx) => {
    const { comfy, w } = await startWithComfy(ctx, "comfyui", {
      wrapper: "2025-10-06",
      secondsPerImage: 0.02,
      startupDelayMs: 600_000, // until load()
    }, (comfy) => ({ COMFYUI_API_BASE: comfy.comfyUrl, BENCHMARK_RUNS: "1" }));
    // The wrapper's /health says healthy at once; the worker still waits.
    const health = await fetch(`${comfy.url}/health`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "healthy");
    await w.waitOutput("Load probe waiting for", 10000);
    const loading = await fetch(`${w.base}/ready`);
    assert.equal(loading.status, 503);
    assert.equal((await loading.json()).state, "loading");
    await delay(1500);
    const still = await fetch(`${w.base}/ready`);
    assert.equal(still.status, 503);
    assert.equal((await still.json()).state, "loading");
    assert.equal(comfy.requests, 0, "no benchmark before ComfyUI is up");
    comfy.load();
    const t0 = performance.now();
    await w.waitBenchmarked(20000);
    // Log lines are written off the request path: the line may trail /ready.
    await w.waitOutput("Model loaded: ", 5000);
    assert.match(w.output(), /Model loaded: .*system_stats.* answered/);
    // The load probe runs every 5 s, as the Python shim's.
    assert.ok(performance.now() - t0 < 15000);

    // ComfyUI refuses the graph: HTTP 200, "failed", relayed as it is,
    // and an error in the ledger, not a success.
    const broken = await w.call("/generate/sync", NO_OUTPUT);
    assert.equal(broken.status, 200);
    const body = await broken.json() as ComfyResult;
    assert.equal(body.status, "failed");
    assert.match(body.message, /Prompt has no outputs/);
    const ok = await w.call("/generate/sync", {
      input: { modifier: "Text2Image" },
    });
    await completed(ok);
    await waitFor(async () => (await outcomes(w)).error === 1, 5000);
    assert.equal((await outcomes(w)).success, 1);
    await w.assertReady();
  });
}

/**
 * Every job fails fast with HTTP 200 (an old wrapper whose ComfyUI cannot
 * run the benchmark): the benchmark fails instead of reporting a fast
 * worker.
 */
function failingBenchmarkScenario(): Promise<void> {
  return inTempDir("comfyui-failing", async (ctx) => {
    const { comfy, w } = await startWithComfy(ctx, "comfyui", {
      wrapper: "2025-12-05",
      secondsPerImage: 0,
      failures: { errorRate: 1 },
    }, (comfy) => ({ COMFYUI_API_BASE: comfy.comfyUrl, BENCHMARK_RUNS: "2" }));
    const why = await w.waitError(20000);
    assert.match(why, /^Benchmark failed: all 2 requests failed/);
    assert.match(why, /status "failed"/);
    assert.ok(comfy.requests >= 3, "warm-up and both runs were sent");
    assert.ok(!(Number((await w.status()).max_perf) > 0), "no max_perf");
  });
}

/**
 * wan as the Python `wan` worker's template runs it: tailing ComfyUI's own
 * log, ready on its `To see the GUI go to: ` line (ComfyUI's /system_stats
 * left unreachable, so the line alone tells).
 */
function wanComfyLineScenario(): Promise<void> {
  return inTempDir("wan-comfy-log", async (ctx) => {
    const comfyLogFile = `${ctx.dir}/comfyui.log`;
    const { w } = await startWithComfy(ctx, "wan", {
      wrapper: "2025-10-06",
      comfyLogFile,
      secondsPerImage: 0.02,
      startupDelayMs: 1000,
    }, () => ({
      MODEL_LOG: comfyLogFile,
      COMFYUI_API_BASE: "http://127.0.0.1:1",
    }));
    await w.waitBenchmarked(20000);
    assert.match(w.output(), /To see the GUI go to: /);
  });
}

Deno.test("comfyui presets with older wrappers: ready once ComfyUI answers, failed jobs are errors, a failing benchmark fails", async () => {
  await allScenarios([
    oldWrapperScenario(),
    failingBenchmarkScenario(),
    wanComfyLineScenario(),
  ]);
});
