/**
 * Hugging Face text-generation-inference (TGI), as Vast's TGI template runs
 * it: model server port 5001 (the Python worker's `http://0.0.0.0:5001`,
 * reached here as `127.0.0.1`, since `0.0.0.0` is a bind address, not a
 * destination), log `/workspace/infer.log`, health `/health`. Routes
 * `/generate` (benchmark) and `/generate_stream` (SSE), both parallel.
 *
 * Choices:
 * - Ready on the router's `Connected` line, in both target spellings TGI
 *   has used (`text_generation_router` and `text_generation_router::server`).
 * - Errors are the launcher's exit lines (`Error: <LauncherError>`), which
 *   TGI prints only when the whole server stops: the Python worker's
 *   `WebserverFailed`, `DownloadError`, `ShardCannotStart`, plus
 *   `ShardFailed`, `ShardDisconnected`, `WebserverCannotStart` and
 *   `NotEnoughMemory` that it missed. Per-request failures (424 "Request
 *   failed during generation") never match.
 * - Workload is the prompt estimate plus `parameters.max_new_tokens`, where
 *   the Python worker used `max_new_tokens` alone and failed (500, later
 *   workload 100) on a request without it; absent, TGI's default of 100 new
 *   tokens is counted.
 * - The old `{"input": {...}}` wrapper is accepted and unwrapped.
 *
 * @module
 */
import type { Payload } from "../lib/config/schemas.ts";
import { estimateTokens } from "../lib/traffic/workload.ts";
import {
  BENCHMARK_SIZE_ENV_VARS,
  finiteNumber,
  isRecord,
  modelServerFrom,
  parallelHandlers,
  type Preset,
  presetEnvVars,
} from "./_preset.ts";
import { randomWords } from "./_words.ts";

/** New tokens TGI generates when a request names none. */
export const TGI_DEFAULT_MAX_NEW_TOKENS = 100;

/** Prompt tokens (chars/4 of `inputs`) + `parameters.max_new_tokens`. */
export function tgiWorkload(payload: Payload): number {
  const params = payload.parameters;
  const requested = isRecord(params)
    ? finiteNumber(params.max_new_tokens)
    : undefined;
  return estimateTokens(payload.inputs) +
    (requested ?? TGI_DEFAULT_MAX_NEW_TOKENS);
}

/** The TGI preset. */
export const tgi: Preset = {
  name: "tgi",
  description: "Hugging Face text-generation-inference (/generate, SSE)",
  workloadRule:
    "prompt tokens (chars/4 of inputs) + parameters.max_new_tokens (default 100)",
  envVars: presetEnvVars(BENCHMARK_SIZE_ENV_VARS),
  config: (env) => ({
    ...modelServerFrom("tgi", env, {
      url: "http://127.0.0.1:5001",
      logFile: "/workspace/infer.log",
      health: "/health",
      onLoad: [
        '"message":"Connected","target":"text_generation_router"',
        '"message":"Connected","target":"text_generation_router::server"',
      ],
      onError: [
        "Error: WebserverFailed",
        "Error: WebserverCannotStart",
        "Error: DownloadError",
        "Error: ShardCannotStart",
        "Error: ShardFailed",
        "Error: ShardDisconnected",
        "Error: NotEnoughMemory",
      ],
      onInfo: ['"message":"Download'],
    }),
    handlers: parallelHandlers(env, {
      routes: ["/generate", "/generate_stream"],
      maxQueueTime: 600,
      shared: { unwrapInput: true, workload: tgiWorkload },
      benchmark: () => ({
        inputs: randomWords(250),
        parameters: {
          max_new_tokens: 128,
          temperature: 0.7,
          return_full_text: false,
        },
      }),
    }),
    engineMetrics: { kind: "tgi" },
  }),
};
