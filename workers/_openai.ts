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
  type EnvVars,
  modelServerFrom,
  parallelHandlers,
  presetEnvVars,
} from "./_preset.ts";
import { randomWords } from "./_words.ts";

/** What differs between OpenAI-compatible engines. */
export interface OpenAiEngine {
  /** Preset name, for error messages. */
  name?: string;
  modelServerUrl: string;
  logFile: string;
  onLoad: string[];
  onError: string[];
  onInfo: string[];
  /** Env var naming the served model, besides `MODEL_NAME`. */
  modelEnv: string;
  embeddings: boolean;
  engineMetrics?: "vllm" | "sglang";
  /** Output tokens assumed when a request names none. @default 16 */
  defaultOutputTokens?: number;
}

/** Output tokens assumed when a request names none (vLLM's default is 16). */
export const DEFAULT_OUTPUT_TOKENS = 16;

/** Env vars the OpenAI-compatible presets read. */
export const OPENAI_ENV_VARS: readonly string[] = presetEnvVars(
  BENCHMARK_SIZE_ENV_VARS,
  ["MODEL_NAME"],
);

/**
 * Prompt tokens (estimated from text length) plus requested output tokens
 * (`max_completion_tokens`, else `max_tokens`, else `defaultOutput`).
 */
export function openAiWorkloadWith(
  defaultOutput: number,
): (payload: Payload) => number {
  return (payload) => {
    const prompt = estimateTokens(payload.prompt) +
      estimateTokens(payload.messages) +
      estimateTokens(payload.input);
    const requested = payload.max_completion_tokens ?? payload.max_tokens;
    const output = typeof requested === "number" && requested >= 0
      ? requested
      : defaultOutput;
    return prompt + output;
  };
}

/**
 * Prompt tokens (estimated from text length) plus requested output tokens:
 * what a request costs an LLM engine, in the units the benchmark measures.
 */
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
  const workload = openAiWorkloadWith(
    engine.defaultOutputTokens ?? DEFAULT_OUTPUT_TOKENS,
  );
  return {
    ...modelServerFrom(engine.name ?? "openai", env, {
      url: engine.modelServerUrl,
      logFile: engine.logFile,
      health: "/health",
      onLoad: engine.onLoad,
      onError: engine.onError,
      onInfo: engine.onInfo,
    }),
    handlers: parallelHandlers(env, {
      routes: [
        "/v1/completions",
        "/v1/chat/completions",
        ...(engine.embeddings
          ? [{ route: "/v1/embeddings", workload: embeddingWorkload }]
          : []),
      ],
      maxQueueTime: 600,
      shared: { unwrapInput: true, workload },
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
