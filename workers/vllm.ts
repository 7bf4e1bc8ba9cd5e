/**
 * vLLM's OpenAI-compatible server, as Vast's vLLM template runs it: model
 * server `http://127.0.0.1:18000`, log `/var/log/portal/vllm.log`, health
 * `/health`, ready on `Application startup complete.`.
 *
 * Errors, as data (checked in vllm-project/vllm):
 * - Fatal at any time: `RuntimeError: Engine` (V1's `Engine core
 *   initialization failed. See root cause above.`, V0's `Engine loop has
 *   died`), `EngineDeadError` and V1's `EngineCore encountered a fatal
 *   error.` (`run_engine_core`, while serving).
 * - Fatal only before the first ready (then counted, and `/health`, 503 on
 *   `EngineDeadError`, decides): Python's `Traceback (most recent call
 *   last):` (a bad model id or flag, OOM while loading; the error message
 *   is its exception line) and V1's `EngineCore failed to start.`
 *   (`logger.exception` in `run_engine_core`: its traceback's exception
 *   line is the message). After
 *   ready vLLM logs a traceback for one bad request, which must not take
 *   the worker down.
 * - supervisord's own log (`/var/log/supervisor/supervisord.log`, not the
 *   model log: the `INFO exited: vllm` pattern the Python worker has can
 *   never match there) for program `vllm`: `exited:` is a startup error,
 *   `gave up:` fatal.
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
      onError: [
        "RuntimeError: Engine",
        "EngineDeadError",
        "EngineCore encountered a fatal error.",
      ],
      onStartupError: [
        "Traceback (most recent call last):",
        "EngineCore failed to start.",
      ],
      onInfo: ['"message":"Download'],
      supervisorProgram: "vllm",
      modelEnv: "VLLM_MODEL",
      embeddings: true,
      engineMetrics: "vllm",
    }, env),
};
