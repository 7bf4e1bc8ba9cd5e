/**
 * vLLM's OpenAI-compatible server, as Vast's vLLM template runs it: model
 * server `http://127.0.0.1:18000`, log `/var/log/portal/vllm.log`, health
 * `/health`, ready on `Application startup complete.`.
 *
 * Error patterns leave out the generic `Traceback (most recent call last):`
 * of the Python worker: vLLM logs a traceback for one bad request, and that
 * must not take the whole worker down. The engine's own fatal lines and the
 * supervisor's exit line are enough to learn that it died.
 *
 * @module
 */
import { OPENAI_ENV_VARS, openAiConfig } from "./_openai.ts";
import type { Preset } from "./_preset.ts";

/** The vLLM preset. */
export const vllm: Preset = {
  name: "vllm",
  aliases: ["openai"],
  description: "vLLM OpenAI-compatible server (completions, chat, embeddings)",
  workloadRule:
    "max_tokens|max_completion_tokens (completions 16, chat 1024 when absent); EDGEWORKER_WORKLOAD=estimate adds prompt tokens (chars/4); embeddings and the OPENAI_ROUTES extras: 500 per reference request, as Python",
  envVars: [...OPENAI_ENV_VARS, "VLLM_MODEL"],
  config: (env) =>
    openAiConfig({
      name: "vllm",
      modelServerUrl: "http://127.0.0.1:18000",
      logFile: "/var/log/portal/vllm.log",
      onLoad: ["Application startup complete."],
      onError: ["INFO exited: vllm", "RuntimeError: Engine", "EngineDeadError"],
      onInfo: ['"message":"Download'],
      modelEnv: "VLLM_MODEL",
      embeddings: true,
      engineMetrics: "vllm",
    }, env),
};
