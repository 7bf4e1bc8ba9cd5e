/**
 * Hugging Face text-generation-inference (TGI), as Vast's TGI template runs
 * it: model server port 5001 (the Python worker's `http://0.0.0.0:5001`,
 * reached here as `127.0.0.1`, since `0.0.0.0` is a bind address, not a
 * destination), log `/workspace/infer.log`, health `/health`. Routes
 * `/generate` (benchmark) and `/generate_stream` (SSE), both parallel.
 *
 * Choices:
 * - Ready on the router's `Connected` line (`tracing::info!("Connected")`
 *   in `router/src/server.rs`): with `--json-output` in both target
 *   spellings TGI has used (`text_generation_router` and
 *   `text_generation_router::server`), else the text form `INFO
 *   text_generation_router::server: router/src/server.rs:2302: Connected`.
 * - Fatal errors are the launcher's exit lines: `main()` returns
 *   `Result<(), LauncherError>`, so Rust prints `Error: <Debug>`, e.g.
 *   `Error: ArgumentValidation("...")`, `Error: NotEnoughCUDADevices("...")`,
 *   `Error: ShardCannotStart` (`launcher/src/main.rs`), only when the whole
 *   server stops. Every variant is listed; `NotEnoughMemory` (an earlier
 *   list had it) is no `LauncherError` (a router error, which surfaces as
 *   `WebserverFailed`) and is gone. A Python traceback from a shard is
 *   fatal before the first ready only. Per-request failures (424 "Request
 *   failed during generation") never match. No supervisord program: TGI's
 *   own image runs the launcher without supervisord.
 * - Workload is `parameters.max_new_tokens`, as the Python worker and the
 *   client's cost count it (`EDGEWORKER_WORKLOAD=estimate` adds the prompt
 *   estimate). Absent, TGI < 3 generates 100 new tokens and TGI ≥ 3 up to
 *   the remaining context; 100 is counted (`EDGEWORKER_DEFAULT_MAX_TOKENS`
 *   sets it), where the Python worker failed on such a request.
 * - The old `{"input": {...}}` wrapper is accepted and unwrapped.
 *
 * @module
 */
import type { Payload } from "../lib/config/schemas.ts";
import { estimateTokens } from "../lib/traffic/workload.ts";
import {
  BENCHMARK_SIZE_ENV_VARS,
  defaultMaxTokensFrom,
  finiteNumber,
  isRecord,
  LLM_CANARY,
  modelServerFrom,
  parallelHandlers,
  type Preset,
  presetEnvVars,
  type WorkloadRule,
  workloadRuleFrom,
} from "./_preset.ts";
import { randomWords } from "./_words.ts";

/** New tokens TGI generates when a request names none. */
export const TGI_DEFAULT_MAX_NEW_TOKENS = 100;

/** `parameters.max_new_tokens` (Python's rule), plus the prompt estimate with `estimate`. */
export function tgiWorkloadWith(
  rule: WorkloadRule,
  defaultNew = TGI_DEFAULT_MAX_NEW_TOKENS,
): (payload: Payload) => number {
  return (payload) => {
    const params = payload.parameters;
    const requested = isRecord(params)
      ? finiteNumber(params.max_new_tokens)
      : undefined;
    const prompt = rule === "estimate" ? estimateTokens(payload.inputs) : 0;
    return prompt + (requested ?? defaultNew);
  };
}

/** TGI's default rule: `parameters.max_new_tokens`, 100 when absent. */
export const tgiWorkload: (payload: Payload) => number = tgiWorkloadWith(
  "requested",
);

/** The TGI preset. */
export const tgi: Preset = {
  name: "tgi",
  description: "Hugging Face text-generation-inference (/generate, SSE)",
  workloadRule:
    "parameters.max_new_tokens (default 100); EDGEWORKER_WORKLOAD=estimate adds prompt tokens (chars/4 of inputs)",
  envVars: [
    ...presetEnvVars(BENCHMARK_SIZE_ENV_VARS),
    "EDGEWORKER_WORKLOAD",
    "EDGEWORKER_DEFAULT_MAX_TOKENS",
  ],
  config: (env) => ({
    ...modelServerFrom("tgi", env, {
      url: "http://127.0.0.1:5001",
      logFile: "/workspace/infer.log",
      health: "/health",
      onLoad: [
        '"message":"Connected","target":"text_generation_router"',
        '"message":"Connected","target":"text_generation_router::server"',
        /\bINFO text_generation_router(?:::server)?: \S+: Connected$/,
      ],
      onError: [
        "Error: ArgumentValidation",
        "Error: NotEnoughCUDADevices",
        "Error: DownloadError",
        "Error: ShardCannotStart",
        "Error: ShardDisconnected",
        "Error: ShardFailed",
        "Error: WebserverFailed",
        "Error: WebserverCannotStart",
      ],
      onStartupError: ["Traceback (most recent call last):"],
      onInfo: ['"message":"Download'],
    }),
    handlers: parallelHandlers(env, {
      routes: ["/generate", "/generate_stream"],
      maxQueueTime: 600,
      shared: {
        unwrapInput: true,
        workload: tgiWorkloadWith(
          workloadRuleFrom("tgi", env),
          defaultMaxTokensFrom("tgi", env, TGI_DEFAULT_MAX_NEW_TOKENS),
        ),
      },
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
    canary: {
      route: "/generate",
      payload: { inputs: "Hello", parameters: { max_new_tokens: 1 } },
      expectField: "generated_text",
      ...LLM_CANARY,
    },
  }),
};
