/**
 * The OpenAI-compatible family (vLLM, SGLang, llama.cpp): routes, workload
 * and benchmark shared by their presets.
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
} from "./_preset.ts";
import { randomWords } from "./_words.ts";

/** What differs between OpenAI-compatible engines. */
export interface OpenAiEngine {
  modelServerUrl: string;
  logFile: string;
  onLoad: string[];
  onError: string[];
  onInfo: string[];
  /** Env var naming the served model, besides `MODEL_NAME`. */
  modelEnv: string;
  embeddings: boolean;
  engineMetrics?: "vllm" | "sglang";
}

/** Output tokens assumed when a request names none (vLLM's default is 16). */
export const DEFAULT_OUTPUT_TOKENS = 16;

/**
 * Prompt tokens (estimated from text length) plus requested output tokens:
 * what a request costs an LLM engine, in the units the benchmark measures.
 */
export function openAiWorkload(payload: Payload): number {
  const prompt = estimateTokens(payload.prompt) +
    estimateTokens(payload.messages) +
    estimateTokens(payload.input);
  const requested = payload.max_completion_tokens ?? payload.max_tokens;
  const output = typeof requested === "number" && requested >= 0
    ? requested
    : DEFAULT_OUTPUT_TOKENS;
  return prompt + output;
}

/** Embeddings produce no tokens: the input size is the work. */
export function embeddingWorkload(payload: Payload): number {
  return Math.max(1, estimateTokens(payload.input));
}

/** Builds the config of an OpenAI-compatible engine. */
export function openAiConfig(
  engine: OpenAiEngine,
  env: EnvVars,
): WorkerConfigInput {
  const model = env.MODEL_NAME ?? env[engine.modelEnv] ?? "default";
  const common = {
    allowParallelRequests: true,
    maxQueueTime: numberFrom(env.MAX_QUEUE_TIME, 600),
    unwrapInput: true,
  } satisfies Partial<HandlerConfigInput>;
  const handlers: HandlerConfigInput[] = [
    {
      ...common,
      route: "/v1/completions",
      workload: openAiWorkload,
      benchmark: {
        generator: () => ({
          model,
          prompt: randomWords(250),
          temperature: 0.7,
          max_tokens: 500,
        }),
        concurrency: numberFrom(env.BENCHMARK_CONCURRENCY, 10),
        runs: numberFrom(env.BENCHMARK_RUNS, 3),
      },
    },
    { ...common, route: "/v1/chat/completions", workload: openAiWorkload },
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
    modelLogFile: env.MODEL_LOG || engine.logFile,
    modelHealthUrl: env.MODEL_HEALTH_ENDPOINT || "/health",
    readiness: "both",
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
