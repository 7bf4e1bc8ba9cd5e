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
import type {
  HandlerConfigInput,
  Payload,
  WorkerConfigInput,
} from "../lib/config.ts";
import { estimateTokens } from "../lib/workload.ts";
import {
  type EnvVars,
  modelServerUrlFrom,
  numberFrom,
  patternsFrom,
  readinessFrom,
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
export const OPENAI_ENV_VARS: readonly string[] = [
  "MODEL_SERVER_URL",
  "MODEL_LOG",
  "MODEL_NAME",
  "MODEL_HEALTH_ENDPOINT",
  "MODEL_LOAD_LOG_MSG",
  "MODEL_ERROR_LOG_MSGS",
  "MODEL_INFO_LOG_MSGS",
  "READINESS",
  "MAX_QUEUE_TIME",
  "BENCHMARK_RUNS",
  "BENCHMARK_CONCURRENCY",
];

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
): WorkerConfigInput {
  // Without a name the field is left out: every engine then uses the one
  // model it serves (a wrong name would fail the whole benchmark with 404).
  const model = modelNameFrom(env, engine.modelEnv);
  const workload = openAiWorkloadWith(
    engine.defaultOutputTokens ?? DEFAULT_OUTPUT_TOKENS,
  );
  const common = {
    allowParallelRequests: true,
    maxQueueTime: numberFrom(env.MAX_QUEUE_TIME, 600),
    unwrapInput: true,
  } satisfies Partial<HandlerConfigInput>;
  const handlers: HandlerConfigInput[] = [
    {
      ...common,
      route: "/v1/completions",
      workload,
      benchmark: {
        generator: () => ({
          ...(model ? { model } : {}),
          prompt: randomWords(250),
          temperature: 0.7,
          max_tokens: 500,
        }),
        concurrency: numberFrom(env.BENCHMARK_CONCURRENCY, 10),
        runs: numberFrom(env.BENCHMARK_RUNS, 3),
      },
    },
    { ...common, route: "/v1/chat/completions", workload },
  ];
  if (engine.embeddings) {
    handlers.push({
      ...common,
      route: "/v1/embeddings",
      workload: embeddingWorkload,
    });
  }
  return {
    modelServerUrl: modelServerUrlFrom(env, engine.modelServerUrl),
    modelLogFile: env.MODEL_LOG?.trim() || engine.logFile,
    modelHealthUrl: env.MODEL_HEALTH_ENDPOINT?.trim() || "/health",
    readiness: readinessFrom(engine.name ?? "openai", env, "both"),
    logActions: {
      onLoad: patternsFrom(env.MODEL_LOAD_LOG_MSG, engine.onLoad),
      onError: patternsFrom(env.MODEL_ERROR_LOG_MSGS, engine.onError),
      onInfo: patternsFrom(env.MODEL_INFO_LOG_MSGS, engine.onInfo),
    },
    handlers,
    ...(engine.engineMetrics
      ? { engineMetrics: { kind: engine.engineMetrics } }
      : {}),
  };
}
