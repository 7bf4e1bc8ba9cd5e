/**
 * SGLang's OpenAI-compatible server, as Vast's SGLang template runs it:
 * model server `http://127.0.0.1:18000`, log `/var/log/portal/sglang.log`,
 * health `/health`, ready on `The server is fired up and ready to roll!`.
 * Routes `/v1/completions` (benchmark), `/v1/chat/completions` and
 * `/v1/embeddings` (served for embedding models).
 *
 * Choices, against the Python worker's traps:
 * - No generic `Traceback (most recent call last):` error pattern (the
 *   Python worker has one): SGLang logs tracebacks for single bad requests,
 *   and one of them must not lock the worker in error for good. Fatal ends
 *   are caught by lines that only a dying server prints: the scheduler's
 *   `Scheduler hit an exception` (it then SIGQUITs the server), the
 *   `Received sigquit from a child process` that follows, and supervisor's
 *   `INFO exited: sglang`.
 * - The benchmark leaves `model` out unless `MODEL_NAME`/`SGLANG_MODEL` is
 *   set: SGLang then uses the model it serves.
 * - Workload counts SGLang's own default of 128 new tokens when a request
 *   names no `max_tokens`.
 *
 * @module
 */
import { OPENAI_ENV_VARS, openAiConfig } from "./_openai.ts";
import type { Preset } from "./_preset.ts";

/** Output tokens SGLang generates when a request names none. */
export const SGLANG_DEFAULT_OUTPUT_TOKENS = 128;

/** The SGLang preset. */
export const sglang: Preset = {
  name: "sglang",
  description:
    "SGLang OpenAI-compatible server (completions, chat, embeddings)",
  workloadRule:
    "prompt tokens (chars/4) + max_completion_tokens|max_tokens (default 128)",
  envVars: [...OPENAI_ENV_VARS, "SGLANG_MODEL"],
  config: (env) =>
    openAiConfig({
      name: "sglang",
      modelServerUrl: "http://127.0.0.1:18000",
      logFile: "/var/log/portal/sglang.log",
      onLoad: ["The server is fired up and ready to roll!"],
      onError: [
        "INFO exited: sglang",
        "Scheduler hit an exception",
        "Received sigquit from a child process",
      ],
      onInfo: ['"message":"Download'],
      modelEnv: "SGLANG_MODEL",
      embeddings: true,
      engineMetrics: "sglang",
      defaultOutputTokens: SGLANG_DEFAULT_OUTPUT_TOKENS,
    }, env),
};
