/**
 * The OpenAI-compatible family (vLLM, SGLang, llama.cpp): routes, workload
 * and benchmark shared by their presets.
 *
 * Every engine serves `/v1/completions` (the benchmark route) and
 * `/v1/chat/completions`, plus `/v1/embeddings` where the engine has it.
 * Bodies are forwarded bare, or unwrapped from the old `{"input": {...}}`
 * shape. Streaming (`"stream": true`) is relayed as the engine sends it.
 *
 * @module
 */
import type { Payload, WorkerConfig } from "../lib/config/schemas.ts";
import { estimateTokens } from "../lib/traffic/workload.ts";
import {
  BENCHMARK_SIZE_ENV_VARS,
  defaultMaxTokensFrom,
  type EnvVars,
  modelServerFrom,
  parallelHandlers,
  presetEnvVars,
  type WorkloadRule,
  workloadRuleFrom,
} from "./_preset.ts";
import { randomWords } from "./_words.ts";

/** What differs between OpenAI-compatible engines. */
export interface OpenAiEngine {
  /** Preset name, for error messages. */
  name?: string;
  modelServerUrl: string;
  logFile: string;
  onLoad: (string | RegExp)[];
  onError: (string | RegExp)[];
  /** Fatal before the first ready, counted after. */
  onStartupError: (string | RegExp)[];
  onInfo: (string | RegExp)[];
  /** supervisord program name on Vast's image. */
  supervisorProgram: string;
  /** Env var naming the served model, besides `MODEL_NAME`. */
  modelEnv: string;
  embeddings: boolean;
  engineMetrics?: "vllm" | "sglang";
  /** Output tokens assumed when a request names none. @default 16 */
  defaultOutputTokens?: number;
  /** Seconds a `/health` probe may take. @default 10 */
  probeTimeoutSeconds?: number;
}

/** Output tokens assumed when a completion names none (vLLM's and SGLang's default). */
export const DEFAULT_OUTPUT_TOKENS = 16;

/**
 * Output tokens assumed when a chat request names none. vLLM and SGLang
 * then generate up to the remaining context (`max_model_len - prompt`),
 * which the worker cannot know; a fixed figure, never 0 (Python counts 0:
 * such a request would look free). `EDGEWORKER_DEFAULT_MAX_TOKENS` sets it.
 */
export const CHAT_DEFAULT_OUTPUT_TOKENS = 1024;

/** Env vars the OpenAI-compatible presets read. */
export const OPENAI_ENV_VARS: readonly string[] = [
  ...presetEnvVars(BENCHMARK_SIZE_ENV_VARS, ["MODEL_NAME"]),
  "EDGEWORKER_WORKLOAD",
  "EDGEWORKER_DEFAULT_MAX_TOKENS",
];

/**
 * The output tokens a request asks for: `max_tokens` (what the Python
 * worker and Vast's client read), else `max_completion_tokens` (OpenAI's
 * newer name), else `defaultOutput`.
 */
export function requestedTokens(
  payload: Payload,
  defaultOutput: number,
): number {
  for (const v of [payload.max_tokens, payload.max_completion_tokens]) {
    if (typeof v === "number" && v >= 0) return v;
  }
  return defaultOutput;
}

/**
 * A request's workload: the requested output tokens (`requested`, Python's
 * rule), or those plus the prompt's tokens estimated from its text length
 * (`estimate`).
 */
export function openAiWorkloadWith(
  defaultOutput: number,
  rule: WorkloadRule = "requested",
): (payload: Payload) => number {
  if (rule === "requested") {
    return (payload) => requestedTokens(payload, defaultOutput);
  }
  return (payload) =>
    estimateTokens(payload.prompt) + estimateTokens(payload.messages) +
    estimateTokens(payload.input) + requestedTokens(payload, defaultOutput);
}

/** The completions rule of vLLM's preset: requested tokens, 16 when absent. */
export const openAiWorkload: (payload: Payload) => number = openAiWorkloadWith(
  DEFAULT_OUTPUT_TOKENS,
);

/** Embeddings produce no tokens: the input size is the work. */
export function embeddingWorkload(payload: Payload): number {
  return Math.max(1, estimateTokens(payload.input));
}

/** The served model: `MODEL_NAME`, else the engine's own variable. */
export function modelNameFrom(
  env: EnvVars,
  engineVar: string,
): string | undefined {
  return env.MODEL_NAME?.trim() || env[engineVar]?.trim() || undefined;
}

/** Builds the config of an OpenAI-compatible engine. */
export function openAiConfig(
  engine: OpenAiEngine,
  env: EnvVars,
): WorkerConfig {
  // Without a name the field is left out: every engine then uses the one
  // model it serves (a wrong name would fail the whole benchmark with 404).
  const model = modelNameFrom(env, engine.modelEnv);
  const rule = workloadRuleFrom(engine.name ?? "openai", env);
  const name = engine.name ?? "openai";
  const completionsDefault = defaultMaxTokensFrom(
    name,
    env,
    engine.defaultOutputTokens ?? DEFAULT_OUTPUT_TOKENS,
  );
  const chatDefault = defaultMaxTokensFrom(
    name,
    env,
    CHAT_DEFAULT_OUTPUT_TOKENS,
  );
  return {
    ...modelServerFrom(engine.name ?? "openai", env, {
      url: engine.modelServerUrl,
      logFile: engine.logFile,
      health: "/health",
      probeTimeoutSeconds: engine.probeTimeoutSeconds,
      onLoad: engine.onLoad,
      onError: engine.onError,
      onStartupError: engine.onStartupError,
      onInfo: engine.onInfo,
      supervisorProgram: engine.supervisorProgram,
    }),
    handlers: parallelHandlers(env, {
      routes: [
        {
          route: "/v1/completions",
          workload: openAiWorkloadWith(completionsDefault, rule),
        },
        {
          route: "/v1/chat/completions",
          workload: openAiWorkloadWith(chatDefault, rule),
        },
        ...(engine.embeddings
          ? [{ route: "/v1/embeddings", workload: embeddingWorkload }]
          : []),
      ],
      maxQueueTime: 600,
      shared: { unwrapInput: true },
      benchmark: () => ({
        ...(model ? { model } : {}),
        prompt: randomWords(250),
        temperature: 0.7,
        max_tokens: 500,
      }),
    }),
    ...(engine.engineMetrics
      ? { engineMetrics: { kind: engine.engineMetrics } }
      : {}),
  };
}
