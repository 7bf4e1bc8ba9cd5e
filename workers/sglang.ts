/**
 * SGLang's OpenAI-compatible server, as Vast's SGLang template runs it:
 * model server `http://127.0.0.1:18000`, log `/var/log/portal/sglang.log`,
 * health `/health`, ready on `The server is fired up and ready to roll!`.
 * Routes `/v1/completions` (benchmark), `/v1/chat/completions` and
 * `/v1/embeddings` (served for embedding models).
 *
 * Choices, against the Python worker's traps:
 * - Python's `Traceback (most recent call last):` is fatal only before the
 *   first ready (SGLang logs tracebacks for single bad requests later,
 *   which are counted; the health check decides). Fatal at any time are
 *   lines only a dying server prints: the scheduler's `Scheduler hit an
 *   exception` (it then SIGQUITs the server), the `Received sigquit from a
 *   child process` that follows, and `Initialization failed. warmup
 *   error:` (`_wait_and_warmup` in `http_server.py`, before
 *   `kill_process_tree`). supervisord's own log for program `sglang`:
 *   `exited:` is a startup error, `gave up:` fatal.
 * - The benchmark leaves `model` out unless `MODEL_NAME`/`SGLANG_MODEL` is
 *   set: SGLang then uses the model it serves.
 * - Health probes may take 30 s: SGLang's `/health` runs a 1-token
 *   generation and waits up to `SGLANG_HEALTH_CHECK_TIMEOUT` (20 s).
 * - Workload is the request's `max_tokens` (Python's rule); absent, 16 for
 *   completions (SGLang's OpenAI `CompletionRequest.max_tokens = 16`,
 *   sgl-project/sglang `entrypoints/openai/protocol.py`; 128 is the
 *   native `/generate` default, not these routes') and a configurable
 *   figure for chat (see `_openai.ts`).
 *
 * @module
 */
import { OPENAI_ENV_VARS, openAiConfig } from "./_openai.ts";
import type { Preset } from "./_preset.ts";

/** The SGLang preset. */
export const sglang: Preset = {
  name: "sglang",
  description:
    "SGLang OpenAI-compatible server (completions, chat, embeddings)",
  workloadRule:
    "max_tokens|max_completion_tokens (completions 16, chat 1024 when absent); EDGEWORKER_WORKLOAD=estimate adds prompt tokens (chars/4); embeddings and the OPENAI_ROUTES extras: 500 per reference request, as Python",
  envVars: [...OPENAI_ENV_VARS, "SGLANG_MODEL"],
  config: (env) =>
    openAiConfig({
      name: "sglang",
      modelServerUrl: "http://127.0.0.1:18000",
      // /health runs a generation for up to SGLANG_HEALTH_CHECK_TIMEOUT (20 s).
      probeTimeoutSeconds: 30,
      logFile: "/var/log/portal/sglang.log",
      onLoad: ["The server is fired up and ready to roll!"],
      onError: [
        "Scheduler hit an exception",
        "Received sigquit from a child process",
        "Initialization failed. warmup error:",
      ],
      onStartupError: ["Traceback (most recent call last):"],
      onInfo: ['"message":"Download'],
      supervisorProgram: "sglang",
      modelEnv: "SGLANG_MODEL",
      embeddings: true,
      engineMetrics: "sglang",
    }, env),
};
