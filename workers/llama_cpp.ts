/**
 * llama.cpp's `llama-server` (OpenAI-compatible), as Vast's llama.cpp
 * template runs it: model server `http://127.0.0.1:18000`, log
 * `/var/log/portal/llama.log`, health `/health` (503 while loading), ready
 * on `model loaded` (printed after `/health` turns 200; `listening on` is
 * printed while it still answers 503). Routes `/v1/completions`
 * (benchmark), `/v1/chat/completions` and `/v1/embeddings` (answered when
 * the server runs with `--embeddings`).
 *
 * Choices:
 * - Load failures (`error loading model`, `failed to load model`,
 *   `exiting due to model loading error`) and Python-style tracebacks are
 *   fatal before the first ready, counted after (the router mode loads
 *   models on demand); a CUDA abort (`ggml_cuda_error`'s
 *   `GGML_ABORT("CUDA error")`: `<file>ggml-cuda.cu:<line>: CUDA error`) is
 *   fatal at any time. supervisord's own log for program `llama`.
 * - No engine metrics scrape: `llama-server` only serves `/metrics` with
 *   `--metrics`, and its names are not vLLM's.
 * - Workload counts 256 output tokens when a request names none
 *   (`n_predict` defaults to "until done", so any number is a guess).
 *
 * @module
 */
import { OPENAI_ENV_VARS, openAiConfig } from "./_openai.ts";
import type { Preset } from "./_preset.ts";

/** Output tokens assumed when a request names none. */
export const LLAMA_DEFAULT_OUTPUT_TOKENS = 256;

/** The llama.cpp preset. */
export const llamaCpp: Preset = {
  name: "llama_cpp",
  aliases: ["llama", "llama.cpp", "llamacpp"],
  description:
    "llama.cpp llama-server, OpenAI-compatible (completions, chat, embeddings)",
  workloadRule:
    "max_tokens|max_completion_tokens (completions 256, chat 1024 when absent); EDGEWORKER_WORKLOAD=estimate adds prompt tokens (chars/4); embeddings and the OPENAI_ROUTES extras: 500 per reference request, as Python",
  envVars: [...OPENAI_ENV_VARS, "LLAMA_MODEL"],
  config: (env) =>
    openAiConfig({
      name: "llama_cpp",
      modelServerUrl: "http://127.0.0.1:18000",
      logFile: "/var/log/portal/llama.log",
      onLoad: ["model loaded"],
      onError: [/ggml-cuda\.cu:\d+: CUDA error\b/],
      onStartupError: [
        "error loading model",
        "failed to load model",
        "exiting due to model loading error",
      ],
      onInfo: ['"message":"Download'],
      supervisorProgram: "llama",
      modelEnv: "LLAMA_MODEL",
      embeddings: true,
      defaultOutputTokens: LLAMA_DEFAULT_OUTPUT_TOKENS,
    }, env),
};
