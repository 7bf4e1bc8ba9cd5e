/**
 * ComfyUI behind ai-dock's comfyui-api-wrapper, as Vast's ComfyUI image
 * runs it: the worker proxies `/generate/sync` to the wrapper at
 * `http://127.0.0.1:18288` (ComfyUI itself is on 18188), one job at a time
 * (FIFO), tails `/var/log/portal/api-wrapper.log`, probes `/health`.
 *
 * Benchmark: the workflow in `BENCHMARK_JSON_PATH` (read when the worker
 * starts; a missing file, bad JSON or a UI-format export stops the start
 * with an error naming the variable), else the image's
 * `/opt/comfyui-api-wrapper/workflows/pyworker_benchmark.json`, else an
 * SD1.5 Text2Image of `BENCHMARK_TEST_WIDTH`×`BENCHMARK_TEST_HEIGHT` at
 * `BENCHMARK_TEST_STEPS` (512×512, 20).
 *
 * Choices, against the Python workers' traps:
 * - Ready on `BACKENDS_READY` as a word (a regex): the plain substring also
 *   matches the fatal `BACKENDS_READY_TIMEOUT`, which would start the
 *   benchmark instead of failing the worker.
 * - Errors are only the wrapper's whole-server failures
 *   (`BACKENDS_READY_TIMEOUT`, `BACKEND_UNRECOVERABLE`, `Application startup
 *   failed`). Per-request errors (`Value not in list:`, workflow validation,
 *   `CUDA out of memory` of one greedy request) are not fatal: one bad
 *   client payload must not kill the worker.
 * - Wrappers older than the `BACKENDS_READY` line (5bbf3e9, 2026-05-08;
 *   the image clones the wrapper unpinned) never print it: then ComfyUI's
 *   own `/system_stats` (`COMFYUI_API_BASE`, 127.0.0.1:18188) and the
 *   wrapper's `/health` both answering 2xx mark it loaded, as the Python
 *   worker's readiness shim does. `/health` alone would not do: before
 *   d199153 (2025-12-05) it always says healthy.
 * - A job the wrapper answers HTTP 200 with `"status": "failed"` (every
 *   wrapper before 5352e36, 2026-05-07) is relayed as it is but counted as
 *   an error, and fails its benchmark request: a benchmark of fast failures
 *   must not report a fast worker.
 * - Workload is pixels × steps where the payload says so (512×512×20 =
 *   100 units), so a 1024² 30-step job counts 6× a default one; the
 *   benchmark uses the same calculator, so `max_perf` is in the same units.
 * - A bare `{"workflow_json": ...}` / `{"modifier": ...}` body is wrapped in
 *   `{"input": ...}` instead of being refused by the wrapper.
 *
 * @module
 */
import {
  COMFY_ENV_VARS,
  comfyConfig,
  comfyWorkload,
  pick,
  REFERENCE_IMAGE,
  REFERENCE_UNITS,
} from "./_comfy.ts";
import { numberFrom, type Preset, workloadRuleFrom } from "./_preset.ts";

const PROMPTS = [
  "a still life on a wooden table, soft daylight",
  "a lighthouse on a rocky coast at dusk, oil painting",
  "a red fox in fresh snow, telephoto photograph",
  "a futuristic city of low buildings at sunset, wide angle",
  "a glass sphere holding a medieval village, macro focus",
];

/** The ComfyUI preset. */
export const comfyui: Preset = {
  name: "comfyui",
  aliases: ["comfyui-json", "comfyui_json"],
  description:
    "ComfyUI via comfyui-api-wrapper (/generate/sync, one job at a time)",
  workloadRule:
    "100 per job (Python's rule); EDGEWORKER_WORKLOAD=estimate: width×height×steps(×frames×batch) / (512×512×20) × 100 from modifications or workflow latents/samplers",
  envVars: [
    ...COMFY_ENV_VARS,
    "EDGEWORKER_WORKLOAD",
    "BENCHMARK_TEST_WIDTH",
    "BENCHMARK_TEST_HEIGHT",
    "BENCHMARK_TEST_STEPS",
  ],
  config: (env) => {
    const width = numberFrom(env.BENCHMARK_TEST_WIDTH, REFERENCE_IMAGE.width);
    const height = numberFrom(
      env.BENCHMARK_TEST_HEIGHT,
      REFERENCE_IMAGE.height,
    );
    const steps = numberFrom(env.BENCHMARK_TEST_STEPS, REFERENCE_IMAGE.steps);
    return comfyConfig({
      name: "comfyui",
      workload: workloadRuleFrom("comfyui", env) === "estimate"
        ? comfyWorkload
        : { kind: "constant", value: REFERENCE_UNITS },
      runs: 3,
      wellKnownBenchmark: true,
      benchmark: () => ({
        input: {
          modifier: "Text2Image",
          modifications: {
            prompt: pick(PROMPTS),
            width,
            height,
            steps,
            seed: Math.floor(Math.random() * 2 ** 31),
          },
        },
      }),
    }, env);
  },
};
