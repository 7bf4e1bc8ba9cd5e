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
import type { Payload } from "../lib/config.ts";
import { unwrapInput } from "../lib/handlers.ts";
import { estimateTokens } from "../lib/workload.ts";
import {
  modelServerUrlFrom,
  numberFrom,
  patternsFrom,
  type Preset,
  readinessFrom,
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
  envVars: [
    "MODEL_SERVER_URL",
    "MODEL_LOG",
    "MODEL_HEALTH_ENDPOINT",
    "MODEL_LOAD_LOG_MSG",
    "MODEL_ERROR_LOG_MSGS",
    "MODEL_INFO_LOG_MSGS",
    "READINESS",
    "MAX_QUEUE_TIME",
    "BENCHMARK_RUNS",
    "BENCHMARK_CONCURRENCY",
  ],
  config: (env) => {
    const health = env.MODEL_HEALTH_ENDPOINT?.trim() || undefined;
    const common = {
      allowParallelRequests: true,
      maxQueueTime: numberFrom(env.MAX_QUEUE_TIME, 10),
      workload: helloWorldWorkload,
      requestParser: helloWorldRequest,
    };
    return {
      modelServerUrl: modelServerUrlFrom(env, "http://127.0.0.1:5001"),
      modelLogFile: env.MODEL_LOG?.trim() || "/workspace/infer.log",
      ...(health ? { modelHealthUrl: health } : {}),
      readiness: readinessFrom("hello_world", env, health ? "both" : "logs"),
      logActions: {
        onLoad: patternsFrom(env.MODEL_LOAD_LOG_MSG, [
          "infer server has started",
        ]),
        onError: patternsFrom(env.MODEL_ERROR_LOG_MSGS, [
          "Exception: corrupted model file",
        ]),
        onInfo: patternsFrom(env.MODEL_INFO_LOG_MSGS, ['"message":"Download']),
      },
      handlers: [
        {
          ...common,
          route: "/generate",
          benchmark: {
            generator: () => ({
              prompt: randomWords(250),
              max_response_tokens: 300,
            }),
            concurrency: numberFrom(env.BENCHMARK_CONCURRENCY, 10),
            runs: numberFrom(env.BENCHMARK_RUNS, 3),
          },
        },
        { ...common, route: "/generate_stream" },
      ],
    };
  },
};
