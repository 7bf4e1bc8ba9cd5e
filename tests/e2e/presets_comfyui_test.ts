/**
 * End to end, the ComfyUI presets (comfyui, wan, ace) against lib/dev's
 * comfyui-api-wrapper stand-in: `main.ts run --preset <name>` subprocesses
 * with signed requests from the control-plane stand-in, run at once.
 */
import assert from "node:assert/strict";
import { text2ImageWorkflow } from "../../dev/_comfy_api.ts";
import { startComfyUiServer } from "../../dev/comfyui_server.ts";
import { aceWorkflow } from "../../workers/ace.ts";
import { wanWorkflow } from "../../workers/wan.ts";
import { allScenarios, appendLog, inTempDir } from "./_presets.ts";

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

function comfyuiScenario(): Promise<void> {
  return inTempDir("comfyui", async ({ dir, defer, start }) => {
    const logFile = `${dir}/api-wrapper.log`;
    const comfy = await startComfyUiServer({ logFile, secondsPerImage: 0.02 });
    defer(() => comfy.close());
    const w = await start("comfyui", {
      MODEL_SERVER_URL: comfy.url,
      MODEL_LOG: logFile,
      BENCHMARK_RUNS: "2",
      BENCHMARK_TEST_WIDTH: "256",
      BENCHMARK_TEST_HEIGHT: "256",
      BENCHMARK_TEST_STEPS: "10",
      MODEL_INFO_LOG_MSGS: "e2e-marker",
    });
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
    assert.equal(big.status, 200);
    const bigBody = await big.json() as ComfyResult;
    assert.equal(bigBody.status, "completed");
    assert.equal(bigBody.output.length, 1);
    assert.equal(graph.status, 200);
    const graphBody = await graph.json() as ComfyResult;
    assert.equal(graphBody.status, "completed");
    assert.equal(graphBody.output.length, 2);
    assert.match(graphBody.output[0].filename, /^e2e_\d+_\.png$/);

    // A bare body is wrapped for the wrapper: 100 units.
    const bare = await w.call("/generate/sync", {
      modifier: "Text2Image",
      modifications: { prompt: "a dog" },
    });
    assert.equal(bare.status, 200);
    assert.equal((await bare.json() as ComfyResult).status, "completed");
    assert.ok((comfy.lastBody as { input?: unknown }).input);

    // A workflow ComfyUI refuses fails that job only (100).
    const broken = await w.call("/generate/sync", {
      input: {
        workflow_json: {
          "4": {
            class_type: "CheckpointLoaderSimple",
            inputs: { ckpt_name: "missing.safetensors" },
          },
        },
      },
    });
    assert.equal(broken.status, 200);
    const brokenBody = await broken.json() as ComfyResult;
    assert.equal(brokenBody.status, "failed");
    assert.match(brokenBody.message, /Prompt has no outputs/);

    await w.waitNewLoad(100 + 100 + 100 + 100);

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

    await comfy.crash();
    assert.match(await w.waitError(), /BACKEND_UNRECOVERABLE/);
  });
}

function wanScenario(): Promise<void> {
  return inTempDir("wan", async ({ dir, defer, start }) => {
    const logFile = `${dir}/api-wrapper.log`;
    const comfy = await startComfyUiServer({ logFile, secondsPerImage: 0.02 });
    defer(() => comfy.close());
    const w = await start("wan", {
      MODEL_SERVER_URL: comfy.url,
      MODEL_LOG: logFile,
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
    assert.equal(r.status, 200);
    const body = await r.json() as ComfyResult;
    assert.equal(body.status, "completed");
    assert.match(body.output[0].filename, /\.mp4$/);
    await w.waitNewLoad(10000);

    await comfy.crash();
    assert.match(await w.waitError(), /BACKEND_UNRECOVERABLE/);
  });
}

function aceScenario(): Promise<void> {
  return inTempDir("ace", async ({ dir, defer, start }) => {
    const logFile = `${dir}/api-wrapper.log`;
    const comfy = await startComfyUiServer({ logFile, secondsPerImage: 0.02 });
    defer(() => comfy.close());
    // A custom benchmark workflow from a file: a 30 s song.
    const custom = aceWorkflow("lo-fi, piano", "[inst]");
    (custom["17"] as { inputs: { seconds: number } }).inputs.seconds = 30;
    await Deno.writeTextFile(`${dir}/bench.json`, JSON.stringify(custom));
    const w = await start("ace", {
      MODEL_SERVER_URL: comfy.url,
      MODEL_LOG: logFile,
      BENCHMARK_JSON_PATH: `${dir}/bench.json`,
    });
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
    assert.equal(r.status, 200);
    const body = await r.json() as ComfyResult;
    assert.equal(body.status, "completed");
    assert.match(body.output[0].filename, /\.mp3$/);
    assert.equal(body.output[0].output_type, "audio");
    await w.waitNewLoad(1000);

    await comfy.crash();
    assert.match(await w.waitError(), /BACKEND_UNRECOVERABLE/);
  });
}

Deno.test("comfyui, wan and ace presets serve, count and fail end to end", async () => {
  await allScenarios([comfyuiScenario(), wanScenario(), aceScenario()]);
});
