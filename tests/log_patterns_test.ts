/**
 * The presets' log pattern tables against lines as the real engines and
 * supervisord print them (each one checked in upstream source; see the
 * preset modules), through the worker's own matcher.
 */
import assert from "node:assert/strict";
import { parseWorkerConfig } from "../lib/config/file.ts";
import { classifyLine, stripAnsi } from "../lib/model/log_monitor.ts";
import { supervisorActions } from "../lib/model/supervisor_log.ts";
import { findPreset } from "../workers/mod.ts";
import { classifyConfigLine } from "./helpers/log_patterns.ts";

type Kind = "load" | "error" | "startupError" | "info" | undefined;

function check(preset: string, table: [string, Kind][]): void {
  const c = parseWorkerConfig(findPreset(preset)!.config({}));
  for (const [line, kind] of table) {
    assert.equal(classifyConfigLine(c, line), kind, `${preset}: ${line}`);
  }
}

const TB = "Traceback (most recent call last):";

Deno.test("vllm pattern table: fatal, fatal before ready, ready, never", () => {
  check("vllm", [
    // Child-process lines carry a `(EngineCore_DP0 pid=N) ` tag.
    [`(EngineCore_DP0 pid=282) ${TB}`, "startupError"],
    [TB, "startupError"],
    [
      "(EngineCore_DP0 pid=282) ERROR 12-01 10:00:00 [core.py:700] EngineCore failed to start.",
      "startupError",
    ],
    [
      "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
      "error",
    ],
    [
      "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.",
      "error",
    ],
    [
      "(EngineCore_DP0 pid=282) ERROR 12-01 10:05:00 [core.py:720] EngineCore encountered a fatal error.",
      "error",
    ],
    // uvicorn colours its level on a tty (log-tee keeps the colour).
    ["\x1b[32mINFO\x1b[0m:     Application startup complete.", "load"],
    // supervisord's lines are never in the model log.
    [
      "2026-12-01 22:55:01,123 INFO exited: vllm (exit status 0; expected)",
      undefined,
    ],
    [
      'INFO:     127.0.0.1:5000 - "POST /v1/completions HTTP/1.1" 400 Bad Request',
      undefined,
    ],
  ]);
});

Deno.test("sglang pattern table: warmup failure, scheduler death, the real ready line", () => {
  check("sglang", [
    [
      `[2026-09-14 23:19:59] Initialization failed. warmup error: ${TB}`,
      "error",
    ],
    [`[2026-09-14 23:19:59] Scheduler hit an exception: ${TB}`, "error"],
    [
      "[2026-09-14 23:19:59] Received sigquit from a child process. It usually means the child failed.",
      "error",
    ],
    [TB, "startupError"],
    ["[2026-09-14 23:19:59] The server is fired up and ready to roll!", "load"],
    // uvicorn's line comes before the warmup: not ready yet.
    [
      "[2026-09-14 23:19:58] INFO:     Application startup complete.",
      undefined,
    ],
  ]);
});

Deno.test("llama_cpp pattern table: load failures before ready, a CUDA abort at any time", () => {
  check("llama_cpp", [
    [
      "llama_model_load: error loading model: unknown model architecture: 'glm5next'",
      "startupError",
    ],
    ["llama_model_load_from_file_impl: failed to load model", "startupError"],
    ["srv    llama_server: exiting due to model loading error", "startupError"],
    // ggml_cuda_error(): GGML_ABORT(GGML_CUDA_NAME " error").
    ["/app/ggml/src/ggml-cuda/ggml-cuda.cu:84: CUDA error", "error"],
    ["main: model loaded", "load"],
    // C++: no Python traceback.
    [TB, undefined],
  ]);
});

Deno.test("tgi pattern table: every LauncherError, both Connected forms, no NotEnoughMemory", () => {
  // `fn main() -> Result<(), LauncherError>` prints `Error: <Debug>`.
  check("tgi", [
    [
      'Error: ArgumentValidation("`max_input_tokens` must be < `max_total_tokens`")',
      "error",
    ],
    [
      'Error: NotEnoughCUDADevices("`num_shard` is 2 but only 1 devices")',
      "error",
    ],
    ["Error: DownloadError", "error"],
    ["Error: ShardCannotStart", "error"],
    ["Error: ShardDisconnected", "error"],
    ["Error: ShardFailed", "error"],
    ["Error: WebserverFailed", "error"],
    ["Error: WebserverCannotStart", "error"],
    // No such LauncherError variant: the pattern is gone.
    ["Error: NotEnoughMemory", undefined],
    [TB, "startupError"],
    [
      '{"timestamp":"2026-12-01T10:00:00.000000Z","level":"INFO","message":"Connected","target":"text_generation_router::server","filename":"router/src/server.rs","line_number":2302}',
      "load",
    ],
    [
      "2026-12-01T10:00:00.000000Z  INFO text_generation_router::server: router/src/server.rs:2302: Connected",
      "load",
    ],
    // The router colours its text lines unless LOG_COLORIZE=1.
    [
      "\x1b[2m2026-12-01T10:00:00.000000Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mtext_generation_router::server\x1b[0m\x1b[2m:\x1b[0m \x1b[2mrouter/src/server.rs\x1b[0m\x1b[2m:\x1b[0m\x1b[2m2302:\x1b[0m Connected",
      "load",
    ],
    [
      '{"level":"ERROR","message":"Request failed during generation: Server error: CUDA OOM","target":"text_generation_router::infer"}',
      undefined,
    ],
  ]);
});

Deno.test("comfyui and hello_world pattern tables: a traceback is a startup error", () => {
  check("comfyui", [
    [TB, "startupError"],
    [
      "ERROR:main:BACKENDS_READY_TIMEOUT: not all of 1 backend(s) reachable after 600s",
      "error",
    ],
    [
      "INFO:main:BACKENDS_READY: 1 backend(s) reachable, ready to serve",
      "load",
    ],
  ]);
  check("hello_world", [
    [TB, "startupError"],
    ["Exception: corrupted model file", "error"],
  ]);
});

Deno.test("presets name their base-image supervisord program (TGI's image has none)", () => {
  const program = (name: string) =>
    parseWorkerConfig(findPreset(name)!.config({})).supervisorProgram;
  assert.equal(program("vllm"), "vllm");
  assert.equal(program("sglang"), "sglang");
  assert.equal(program("llama_cpp"), "llama");
  assert.equal(program("comfyui"), "api-wrapper");
  assert.equal(program("tgi"), undefined);
});

Deno.test("supervisord pattern table: only the program's exit and give-up lines", () => {
  const actions = supervisorActions("vllm");
  const t = "2026-12-01 22:55:01,123";
  const table: [string, Kind][] = [
    // supervisor 4.x: unexpected exits at WARN, expected ones at INFO.
    [`${t} WARN exited: vllm (exit status 1; not expected)`, "startupError"],
    [`${t} INFO exited: vllm (exit status 0; expected)`, "startupError"],
    [
      `${t} WARN exited: vllm (terminated by SIGKILL; not expected)`,
      "startupError",
    ],
    // supervisor 3.x logged both at INFO.
    [`${t} INFO exited: vllm (exit status 1; not expected)`, "startupError"],
    [
      `${t} INFO gave up: vllm entered FATAL state, too many start retries too quickly`,
      "error",
    ],
    // Other programs, and harmless events, count for nothing.
    [`${t} WARN exited: vllm-omni (exit status 1; not expected)`, undefined],
    [`${t} WARN exited: jupyter (exit status 1; not expected)`, undefined],
    [
      `${t} INFO gave up: ray entered FATAL state, too many start retries too quickly`,
      undefined,
    ],
    [`${t} INFO stopped: vllm (terminated by SIGTERM)`, undefined],
    [`${t} INFO spawned: 'vllm' with pid 123`, undefined],
    [
      `${t} INFO success: vllm entered RUNNING state, process has stayed up for > than 0 seconds (startsecs)`,
      undefined,
    ],
  ];
  for (const [line, kind] of table) {
    assert.equal(classifyLine(actions, line), kind, line);
  }
  // A program name is matched literally, not as a pattern.
  const wrapper = supervisorActions("api-wrapper");
  assert.equal(
    classifyLine(
      wrapper,
      `${t} WARN exited: api-wrapper (exit status 1; not expected)`,
    ),
    "startupError",
  );
  assert.equal(
    classifyLine(
      supervisorActions("a.b"),
      `${t} WARN exited: axb (exit status 1; not expected)`,
    ),
    undefined,
  );
});

Deno.test("stripAnsi removes colours, cursor moves and titles, and nothing else", () => {
  assert.equal(stripAnsi("\x1b[1;31mERROR\x1b[0m x"), "ERROR x");
  assert.equal(stripAnsi("a\x1b[2K\x1b[1Ab"), "ab");
  assert.equal(stripAnsi("\x1b]0;title\x07text"), "text");
  assert.equal(stripAnsi("plain [brackets] (ok)"), "plain [brackets] (ok)");
});
