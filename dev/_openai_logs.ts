/**
 * Log lines of the OpenAI-compatible engines (vLLM, SGLang, llama.cpp's
 * `llama-server`), as they print them, for the dev stand-in. PyWorker-style
 * workers match these by substring: vLLM `Application startup complete.`,
 * SGLang `The server is fired up and ready to roll!`, llama.cpp
 * `main: model loaded`; errors `RuntimeError: Engine`, `error loading model`,
 * `failed to load model`, `Traceback (most recent call last):`. supervisord's
 * `exited:` lines go to its own log (see `_standin.ts`), never here.
 *
 * @module
 */

import { sglangTime, vllmTime } from "./_log.ts";

/** Which engine's log format to write. */
export type Flavor = "vllm" | "sglang" | "llama_cpp";

/** supervisord program name of each engine (base-image `conf.d/*.conf`). */
export const PROGRAM: Record<Flavor, string> = {
  vllm: "vllm",
  sglang: "sglang",
  llama_cpp: "llama",
};

const v = (level: string, where: string, msg: string): string =>
  `${level} ${vllmTime()} [${where}] ${msg}`;
const s = (msg: string): string => `${sglangTime()} ${msg}`;

/** Lines printed while the process starts and the weights load. */
export function bootLines(
  flavor: Flavor,
  model: string,
  port: number,
): string[] {
  switch (flavor) {
    case "vllm":
      return [
        v("INFO", "api_server.py:1805", "vLLM API server version 0.10.1.1"),
        v(
          "INFO",
          "utils.py:326",
          `non-default args: {'model': '${model}', 'port': ${port}}`,
        ),
        v(
          "INFO",
          "core.py:71",
          `Initializing a V1 LLM engine (v0.10.1.1) with config: model='${model}'`,
        ),
        v(
          "INFO",
          "gpu_model_runner.py:1892",
          `Starting to load model ${model}...`,
        ),
      ];
    case "sglang":
      return [
        s(`server_args=ServerArgs(model_path='${model}', host='127.0.0.1', port=${port})`),
        s("Load weight begin. avail mem=78.50 GB"),
      ];
    case "llama_cpp":
      return [
        "build: 6250 (e92734d5) with cc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0 for x86_64-linux-gnu",
        `main: HTTP server is listening, hostname: 127.0.0.1, port: ${port}, http threads: 7`,
        "main: loading model",
        `srv    load_model: loading model '${model}'`,
      ];
  }
}

/** Lines printed once the server is ready (they contain the load pattern). */
export function readyLines(flavor: Flavor, port: number): string[] {
  const pid = Deno.pid;
  switch (flavor) {
    case "vllm":
      return [
        v("INFO", "default_loader.py:262", "Loading weights took 1.02 seconds"),
        v(
          "INFO",
          "gpu_model_runner.py:1931",
          "Model loading took 1.1201 GiB and 1.815 seconds",
        ),
        v(
          "INFO",
          "api_server.py:1857",
          `Starting vLLM API server 0 on http://127.0.0.1:${port}`,
        ),
        `INFO:     Started server process [${pid}]`,
        "INFO:     Waiting for application startup.",
        "INFO:     Application startup complete.",
      ];
    case "sglang":
      return [
        s("Load weight end. type=LlamaForCausalLM, dtype=torch.bfloat16, avail mem=76.10 GB"),
        s(`INFO:     Started server process [${pid}]`),
        s("INFO:     Waiting for application startup."),
        s("INFO:     Application startup complete."),
        s(`INFO:     Uvicorn running on http://127.0.0.1:${port} (Press CTRL+C to quit)`),
        s("The server is fired up and ready to roll!"),
      ];
    case "llama_cpp":
      return [
        "srv          init: initializing slots, n_slots = 4",
        "main: model loaded",
        `main: server is listening on http://127.0.0.1:${port} - starting the main loop`,
        "srv  update_slots: all slots are idle",
      ];
  }
}

/** Lines printed when loading the model fails (the process then exits). */
export function startupFailureLines(flavor: Flavor, model: string): string[] {
  switch (flavor) {
    case "vllm":
      return [
        v("ERROR", "core.py:700", "EngineCore failed to start."),
        "Traceback (most recent call last):",
        '  File "/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py", line 691, in run_engine_core',
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB.",
        "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
      ];
    case "sglang":
      return [
        s("Scheduler hit an exception: Traceback (most recent call last):"),
        '  File "/usr/local/lib/python3.12/dist-packages/sglang/srt/managers/scheduler.py", line 2300, in run_scheduler_process',
        "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.",
        s("Received sigquit from a child process. It usually means the child failed."),
      ];
    case "llama_cpp":
      return [
        "llama_model_load: error loading model: tensor 'blk.0.attn_q.weight' data is not within the file bounds",
        "llama_model_load_from_file_impl: failed to load model",
        `common_init_from_params: failed to load model '${model}'`,
        `srv    load_model: failed to load model, '${model}'`,
        "main: exiting due to model loading error",
      ];
  }
}

/** Lines printed when the engine dies while serving. */
export function crashLines(flavor: Flavor): string[] {
  switch (flavor) {
    case "vllm":
      return [
        v("ERROR", "core.py:720", "EngineCore encountered a fatal error."),
        "Traceback (most recent call last):",
        '  File "/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py", line 711, in run_engine_core',
        "RuntimeError: CUDA error: an illegal memory access was encountered",
        "RuntimeError: Engine loop has died",
        "INFO:     Shutting down",
      ];
    case "sglang":
      return [
        s("Scheduler hit an exception: Traceback (most recent call last):"),
        "RuntimeError: CUDA error: an illegal memory access was encountered",
        s("Received sigquit from a child process. It usually means the child failed."),
      ];
    case "llama_cpp":
      return [
        "/app/ggml/src/ggml-cuda/ggml-cuda.cu:84: CUDA error",
        "CUDA error: an illegal memory access was encountered",
      ];
  }
}

/** One access-log line for an answered request. */
export function accessLine(
  flavor: Flavor,
  remote: string,
  method: string,
  path: string,
  status: number,
  reason: string,
): string {
  if (flavor === "llama_cpp") {
    return `srv  log_server_r: request: ${method} ${path} ${
      remote.split(":")[0]
    } ${status}`;
  }
  const line =
    `INFO:     ${remote} - "${method} ${path} HTTP/1.1" ${status} ${reason}`;
  return flavor === "sglang" ? s(line) : line;
}

/** A per-request engine error line (no traceback: the server stays up). */
export function requestErrorLine(flavor: Flavor, message: string): string {
  switch (flavor) {
    case "vllm":
      return v("ERROR", "serving_engine.py:512", message);
    case "sglang":
      return s(`ERROR: ${message}`);
    case "llama_cpp":
      return `srv    send_error: task id = 0, error: ${message}`;
  }
}
