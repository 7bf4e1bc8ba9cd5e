/**
 * The legacy PyWorker tutorial's model server ("hello_world"): an LLM on
 * port 5001 (the tutorial's `http://0.0.0.0:5001`, reached as `127.0.0.1`)
 * with `/generate` (JSON) and `/generate_stream` (SSE), both taking
 * `{"prompt": str, "max_response_tokens": int | null}`. Ready on `infer
 * server has started`; fatal on `Exception: corrupted model file`.
 *
 * Choices:
 * - Workload is the prompt's token count, as in the tutorial, estimated
 *   from its length (4 characters a token) instead of downloading the
 *   `openai-gpt` tokenizer.
 * - The log is `MODEL_LOG` (the tutorial required it), by default
 *   `/workspace/infer.log`, the file of the template it was written for.
 * - No health check unless `MODEL_HEALTH_ENDPOINT` is set: the tutorial's
 *   was a placeholder that always answered "ready".
 * - A body without `prompt` or `max_response_tokens` gets 422, as the
 *   tutorial's `InputData.from_json_msg` did; other fields are dropped.
 *
 * @module
 */
import type { Payload } from "../lib/config/schemas.ts";
import { unwrapInput } from "../lib/traffic/handlers.ts";
import { estimateTokens } from "../lib/traffic/workload.ts";
import {
  BENCHMARK_SIZE_ENV_VARS,
  LLM_CANARY,
  modelServerFrom,
  parallelHandlers,
  type Preset,
  presetEnvVars,
} from "./_preset.ts";
import { randomWords } from "./_words.ts";

/** Prompt tokens, estimated from the prompt's length. */
export function helloWorldWorkload(payload: Payload): number {
  return estimateTokens(payload.prompt);
}

/** Keeps the tutorial's two fields; throws when one is missing. */
export function helloWorldRequest(payload: Payload): Payload {
  const body = unwrapInput(payload);
  const missing = ["prompt", "max_response_tokens"].filter((k) => !(k in body));
  if (missing.length > 0) {
    throw new Error(`missing parameter: ${missing.join(", ")}`);
  }
  if (typeof body.prompt !== "string") {
    throw new Error("prompt must be a string");
  }
  return { prompt: body.prompt, max_response_tokens: body.max_response_tokens };
}

/** The hello_world preset. */
export const helloWorld: Preset = {
  name: "hello_world",
  aliases: ["hello-world"],
  description: "The PyWorker tutorial's LLM server (/generate, SSE stream)",
  workloadRule: "prompt tokens (chars/4)",
  envVars: presetEnvVars(BENCHMARK_SIZE_ENV_VARS),
  config: (env) => ({
    ...modelServerFrom("hello_world", env, {
      url: "http://127.0.0.1:5001",
      logFile: "/workspace/infer.log",
      onLoad: ["infer server has started"],
      onError: ["Exception: corrupted model file"],
      onStartupError: ["Traceback (most recent call last):"],
      onInfo: ['"message":"Download'],
    }),
    handlers: parallelHandlers(env, {
      routes: ["/generate", "/generate_stream"],
      maxQueueTime: 10,
      shared: {
        workload: helloWorldWorkload,
        requestParser: helloWorldRequest,
      },
      benchmark: () => ({ prompt: randomWords(250), max_response_tokens: 300 }),
    }),
    canary: {
      route: "/generate",
      payload: { prompt: "Hello", max_response_tokens: 1 },
      expectField: "response",
      ...LLM_CANARY,
    },
  }),
};
