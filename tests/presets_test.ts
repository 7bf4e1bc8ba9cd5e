/**
 * Presets as configs: workload calculators, env overrides, benchmark files,
 * log patterns against the stand-ins' real lines, and the listing.
 */
import assert from "node:assert/strict";
import type {
  Payload,
  ResolvedHandlerConfig,
  ResolvedWorkerConfig,
} from "../lib/config/schemas.ts";
import { ConfigError, parseWorkerConfig } from "../lib/config/file.ts";
import { classifyConfigLine } from "./helpers/log_patterns.ts";
import { workloadOf } from "../lib/traffic/workload.ts";
import * as comfyLog from "../dev/_comfy_logs.ts";
import * as openAiLog from "../dev/_openai_logs.ts";
import {
  tgiBootLines,
  tgiCrashLines,
  tgiReadyLines,
  tgiRequestLine,
  tgiStartupFailureLines,
} from "../dev/_tgi_api.ts";
import {
  comfyWorkload,
  pixelStepUnits,
  workflowUnits,
} from "../workers/_comfy.ts";
import { aceWorkflow } from "../workers/ace.ts";
import { describePresets } from "../workers/describe.ts";
import { helloWorldRequest } from "../workers/hello_world.ts";
import { findPreset, PRESETS } from "../workers/mod.ts";
import { tgiWorkload } from "../workers/tgi.ts";
import { wanWorkflow } from "../workers/wan.ts";
import type { EnvVars } from "../workers/_preset.ts";

/** The validated config of preset `name` in `env`. */
function configOf(name: string, env: EnvVars = {}): ResolvedWorkerConfig {
  const preset = findPreset(name);
  assert.ok(preset, `preset ${name}`);
  return parseWorkerConfig(preset.config(env), `preset ${name}`);
}

function handler(
  c: ResolvedWorkerConfig,
  route: string,
): ResolvedHandlerConfig {
  const h = c.handlers.find((h) => h.route === route);
  assert.ok(h, `route ${route}`);
  return h;
}

/** The safe workload calculator of `route`. */
function workload(
  c: ResolvedWorkerConfig,
  route: string,
): (p: Payload) => number {
  return workloadOf(handler(c, route).workload, route);
}

/** A benchmark payload of the config's benchmark handler. */
function benchmarkPayload(
  c: ResolvedWorkerConfig,
): { route: string; payload: Payload } {
  const h = c.handlers.find((h) => h.benchmark);
  assert.ok(h?.benchmark, "a benchmark handler");
  const b = h.benchmark;
  const payload = b.generator ? b.generator() : structuredClone(b.dataset![0]);
  return { route: h.route, payload };
}

/** The first rule a line matches, as the log monitor picks it. */
function classify(c: ResolvedWorkerConfig, line: string): string | undefined {
  return classifyConfigLine(c, line);
}

async function withTempDir(fn: (dir: string) => Promise<void> | void) {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-presets-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("every preset builds a valid config with one benchmark handler", () => {
  const names = PRESETS.map((p) => p.name);
  assert.deepEqual(names, [
    "vllm",
    "sglang",
    "llama_cpp",
    "tgi",
    "comfyui",
    "wan",
    "ace",
    "hello_world",
    "null",
    "generic",
  ]);
  for (const p of PRESETS) {
    const c = p.name === "generic" ? undefined : configOf(p.name);
    if (!c) continue;
    assert.equal(c.handlers.filter((h) => h.benchmark).length, 1, p.name);
    // The null worker has no model: a lifecycle hook instead of a log.
    if (p.name === "null") {
      assert.ok(c.lifecycle && c.handlers[0].remoteFunction, p.name);
      continue;
    }
    assert.ok(c.modelLogFile, `${p.name} log`);
    assert.ok(c.logActions.onLoad.length > 0, `${p.name} load pattern`);
    assert.ok(c.logActions.onError.length > 0, `${p.name} error pattern`);
    assert.ok(!c.modelServerUrl.includes("0.0.0.0"), `${p.name} url`);
  }
  assert.equal(findPreset(" LLAMA ")?.name, "llama_cpp");
  assert.equal(findPreset("comfyui-json")?.name, "comfyui");
  assert.equal(findPreset("openai")?.name, "vllm");
  assert.equal(findPreset("nope"), undefined);
});

Deno.test("defaults follow the reference: ports, logs, health and routes", () => {
  // The three OpenAI-compatible engines serve the same default routes.
  const OPENAI_ROUTES = [
    "/v1/completions",
    "/v1/chat/completions",
    "/v1/embeddings",
  ];
  // The three ComfyUI presets: the api-wrapper, its log, its one route.
  const COMFY_WRAPPER: [string, string, string[]] = [
    "http://127.0.0.1:18288",
    "/var/log/portal/api-wrapper.log",
    ["/generate/sync"],
  ];
  const expect: Record<string, [string, string, string[]]> = {
    vllm: ["http://127.0.0.1:18000", "/var/log/portal/vllm.log", OPENAI_ROUTES],
    sglang: [
      "http://127.0.0.1:18000",
      "/var/log/portal/sglang.log",
      OPENAI_ROUTES,
    ],
    llama_cpp: [
      "http://127.0.0.1:18000",
      "/var/log/portal/llama.log",
      OPENAI_ROUTES,
    ],
    tgi: ["http://127.0.0.1:5001", "/workspace/infer.log", [
      "/generate",
      "/generate_stream",
    ]],
    comfyui: COMFY_WRAPPER,
    wan: COMFY_WRAPPER,
    ace: COMFY_WRAPPER,
    hello_world: ["http://127.0.0.1:5001", "/workspace/infer.log", [
      "/generate",
      "/generate_stream",
    ]],
  };
  for (const [name, [url, log, routes]] of Object.entries(expect)) {
    const c = configOf(name);
    assert.equal(c.modelServerUrl, url, name);
    assert.equal(c.modelLogFile, log, name);
    assert.deepEqual(c.handlers.map((h) => h.route), routes, name);
  }
  for (const name of ["comfyui", "wan", "ace"]) {
    const c = configOf(name);
    assert.equal(c.modelHealthUrl, "/health");
    assert.equal(c.handlers[0].allowParallelRequests, false, `${name} FIFO`);
    assert.deepEqual(c.logActions.onError, [
      "BACKENDS_READY_TIMEOUT",
      "BACKEND_UNRECOVERABLE",
      "Application startup failed",
    ]);
  }
  assert.equal(configOf("wan").handlers[0].benchmark?.runs, 1);
  assert.equal(configOf("ace").handlers[0].benchmark?.runs, 1);
  const hello = configOf("hello_world");
  assert.deepEqual(hello.logActions.onLoad, ["infer server has started"]);
  assert.deepEqual(hello.logActions.onError, [
    "Exception: corrupted model file",
  ]);
  assert.equal(hello.readiness, "logs");
});

Deno.test("OpenAI family workload: the requested tokens, as Python and the client's cost count", () => {
  const vllm = configOf("vllm");
  const completions = workload(vllm, "/v1/completions");
  // A 4,000-character prompt does not count: the client's cost is max_tokens.
  assert.equal(completions({ prompt: "a".repeat(4000), max_tokens: 50 }), 50);
  assert.equal(completions({ prompt: "abcd" }), 16, "vLLM completions default");
  const chat = workload(vllm, "/v1/chat/completions");
  const messages = [
    { role: "system", content: "s".repeat(8) },
    { role: "user", content: [{ type: "text", text: "u".repeat(12) }] },
  ];
  assert.equal(
    chat({ messages, max_tokens: 10, max_completion_tokens: 4 }),
    10,
    "max_tokens first, as Python reads it",
  );
  assert.equal(chat({ messages, max_completion_tokens: 4 }), 4);
  assert.equal(
    chat({ messages }),
    1024,
    "chat: remaining context, counted 1024",
  );
  // Embeddings as Python counts them: 500 per 600 characters (one
  // benchmark request), clamped to 50-4000.
  const embeddings = workload(vllm, "/v1/embeddings");
  assert.equal(embeddings({ input: ["ab", "cdef"] }), 50);
  assert.equal(embeddings({ input: "e".repeat(1200) }), 1000);
  assert.equal(embeddings({ input: [[1, 2, 3], 7, "é".repeat(584)] }), 500);
  assert.equal(
    workload(configOf("sglang"), "/v1/completions")({ prompt: "abcd" }),
    16,
  );
  assert.equal(
    workload(configOf("llama_cpp"), "/v1/completions")({ prompt: "abcd" }),
    256,
  );
  // EDGEWORKER_DEFAULT_MAX_TOKENS sets the figure for both routes.
  const set = configOf("vllm", { EDGEWORKER_DEFAULT_MAX_TOKENS: "300" });
  assert.equal(workload(set, "/v1/chat/completions")({ messages }), 300);
  assert.equal(workload(set, "/v1/completions")({ prompt: "x" }), 300);
  for (const name of ["vllm", "tgi"]) {
    assert.throws(
      () => configOf(name, { EDGEWORKER_DEFAULT_MAX_TOKENS: "many" }),
      /EDGEWORKER_DEFAULT_MAX_TOKENS: expected a positive whole number, got "many"/,
    );
  }
  // The benchmark payload is measured by the same calculator: max_perf in
  // the client's units.
  const { route, payload } = benchmarkPayload(vllm);
  assert.equal(route, "/v1/completions");
  assert.equal(payload.max_tokens, 500);
  assert.equal(completions(payload), 500);
});

Deno.test("OpenAI family workload, EDGEWORKER_WORKLOAD=estimate: prompt estimate plus requested tokens", () => {
  const vllm = configOf("vllm", { EDGEWORKER_WORKLOAD: "estimate" });
  const completions = workload(vllm, "/v1/completions");
  assert.equal(completions({ prompt: "a".repeat(40), max_tokens: 5 }), 15);
  assert.equal(completions({ prompt: "a".repeat(41), max_tokens: 5 }), 16);
  assert.equal(completions({ prompt: "abcd" }), 1 + 16);
  assert.throws(
    () => configOf("vllm", { EDGEWORKER_WORKLOAD: "tokens" }),
    /EDGEWORKER_WORKLOAD: expected "requested" or "estimate", got "tokens"/,
  );
});

Deno.test("OpenAI family: model from MODEL_NAME, else the engine's variable, else left out", () => {
  const model = (name: string, env: EnvVars) =>
    benchmarkPayload(configOf(name, env)).payload.model;
  assert.equal(model("vllm", {}), undefined);
  assert.equal(model("vllm", { VLLM_MODEL: "v" }), "v");
  assert.equal(model("vllm", { VLLM_MODEL: "v", MODEL_NAME: "m" }), "m");
  assert.equal(model("sglang", { SGLANG_MODEL: "s" }), "s");
  assert.equal(model("llama_cpp", { LLAMA_MODEL: "l" }), "l");
  assert.equal(model("llama_cpp", { VLLM_MODEL: "v" }), undefined);
});

Deno.test("TGI workload: parameters.max_new_tokens, as Python counts; the estimate on request", () => {
  assert.equal(
    tgiWorkload({
      inputs: "x".repeat(4000),
      parameters: { max_new_tokens: 50 },
    }),
    50,
  );
  assert.equal(tgiWorkload({ inputs: "x".repeat(8) }), 100, "absent: 100");
  assert.equal(
    tgiWorkload({ inputs: "xxxx", parameters: { max_new_tokens: "9" } }),
    100,
  );
  const c = configOf("tgi");
  const { payload } = benchmarkPayload(c);
  assert.equal(workload(c, "/generate")(payload), 128);
  const estimate = configOf("tgi", { EDGEWORKER_WORKLOAD: "estimate" });
  assert.equal(
    workload(estimate, "/generate")({
      inputs: "x".repeat(16),
      parameters: { max_new_tokens: 6 },
    }),
    4 + 6,
  );
  // Wrapped bodies are unwrapped before the workload is counted.
  assert.equal(handler(c, "/generate_stream").unwrapInput, true);
});

Deno.test("hello_world: prompt tokens, and the tutorial's payload check", () => {
  const c = configOf("hello_world");
  const w = workload(c, "/generate");
  assert.equal(w({ prompt: "p".repeat(32), max_response_tokens: 500 }), 8);
  assert.deepEqual(
    helloWorldRequest({ prompt: "hi", max_response_tokens: 3, extra: 1 }),
    { prompt: "hi", max_response_tokens: 3 },
  );
  assert.deepEqual(
    helloWorldRequest({ input: { prompt: "hi", max_response_tokens: null } }),
    { prompt: "hi", max_response_tokens: null },
  );
  assert.throws(
    () => helloWorldRequest({ prompt: "hi" }),
    /missing parameter: max_response_tokens/,
  );
  assert.throws(
    () => helloWorldRequest({ prompt: 3, max_response_tokens: 1 }),
    /prompt must be a string/,
  );
});

Deno.test("ComfyUI workload: 100 per job as Python counts; pixels × steps with EDGEWORKER_WORKLOAD=estimate", () => {
  const python = workload(configOf("comfyui"), "/generate/sync");
  assert.equal(
    python({
      input: {
        modifier: "Text2Image",
        modifications: { width: 1024, height: 1024 },
      },
    }),
    100,
  );
  assert.equal(pixelStepUnits(512 * 512, 20), 100);
  const mod = (m: Record<string, unknown>) =>
    comfyWorkload({ input: { modifier: "Text2Image", modifications: m } });
  assert.equal(mod({ prompt: "cat" }), 100, "the wrapper's defaults");
  assert.equal(mod({ width: 1024, height: 1024 }), 400);
  assert.equal(mod({ width: 1024, height: 1024, steps: 30 }), 600);
  assert.equal(mod({ width: 512, height: 512, batch_size: 4 }), 400);
  assert.equal(mod({ width: "huge", steps: -3 }), 100);
  const sd = {
    "3": { class_type: "KSampler", inputs: { steps: 30, seed: 1 } },
    "5": {
      class_type: "EmptyLatentImage",
      inputs: { width: 512, height: 512, batch_size: 2 },
    },
    "9": { class_type: "SaveImage", inputs: { images: ["8", 0] } },
  };
  assert.equal(comfyWorkload({ input: { workflow_json: sd } }), 300);
  assert.equal(comfyWorkload({ workflow_json: sd }), 300, "bare body");
  // Wan: 640×640×81 frames at 20 steps.
  assert.equal(
    workflowUnits(wanWorkflow("x")),
    pixelStepUnits(640 * 640 * 81, 20),
  );
  // No latent size (ACE's audio latent) or placeholder steps: constant.
  assert.equal(
    comfyWorkload({ input: { workflow_json: aceWorkflow("a", "b") } }),
    100,
  );
  assert.equal(
    comfyWorkload({
      input: {
        workflow_json: {
          ...sd,
          "3": { class_type: "KSampler", inputs: { steps: "__RANDOM_INT__" } },
        },
      },
    }),
    100,
  );
  assert.equal(comfyWorkload({}), 100);

  // The benchmark's payload goes through the same calculator.
  const c = configOf("comfyui", {
    EDGEWORKER_WORKLOAD: "estimate",
    BENCHMARK_TEST_WIDTH: "256",
    BENCHMARK_TEST_HEIGHT: "256",
    BENCHMARK_TEST_STEPS: "10",
  });
  const { payload } = benchmarkPayload(c);
  assert.equal(workload(c, "/generate/sync")(payload), 12.5);
  const b1 = benchmarkPayload(configOf("comfyui")).payload;
  const input = b1.input as Record<string, unknown>;
  assert.match(String(input.request_id), /^benchmark-/);
  assert.equal(workload(configOf("comfyui"), "/generate/sync")(b1), 100);
});

Deno.test("Wan and ACE: constant workloads and real-shaped benchmark graphs", () => {
  const wan = configOf("wan");
  const ace = configOf("ace");
  assert.equal(workload(wan, "/generate/sync")({ input: {} }), 10000);
  assert.equal(workload(ace, "/generate/sync")({ input: {} }), 1000);
  const wanGraph = (benchmarkPayload(wan).payload.input as {
    workflow_json: Record<
      string,
      { class_type: string; inputs: Record<string, unknown> }
    >;
  }).workflow_json;
  const classes = Object.values(wanGraph).map((n) => n.class_type);
  assert.ok(classes.includes("EmptyHunyuanLatentVideo"));
  assert.equal(classes.filter((c) => c === "KSamplerAdvanced").length, 2);
  assert.ok(classes.includes("SaveVideo"));
  assert.equal(wanGraph["57"].inputs.noise_seed, "__RANDOM_INT__");
  assert.deepEqual(
    [wanGraph["59"].inputs.width, wanGraph["59"].inputs.length],
    [640, 81],
  );
  const aceGraph = (benchmarkPayload(ace).payload.input as {
    workflow_json: Record<
      string,
      { class_type: string; inputs: Record<string, unknown> }
    >;
  }).workflow_json;
  assert.equal(aceGraph["17"].inputs.seconds, 180);
  assert.equal(aceGraph["52"].inputs.steps, 65);
  assert.equal(aceGraph["59"].class_type, "SaveAudioMP3");
});

Deno.test("env overrides: URL, log, health, patterns (newline lists), readiness, queue", () => {
  for (const name of ["vllm", "tgi", "comfyui", "hello_world"]) {
    const c = configOf(name, {
      MODEL_SERVER_URL: "http://10.0.0.2:9000",
      MODEL_LOG: "/tmp/model.log",
      MODEL_HEALTH_ENDPOINT: "/healthz",
      MODEL_LOAD_LOG_MSG: "up and running",
      MODEL_ERROR_LOG_MSGS: "fatal one\r\n\n  fatal two  \n",
      MODEL_INFO_LOG_MSGS: "note",
      READINESS: "Healthcheck",
      MAX_QUEUE_TIME: "42",
      BENCHMARK_RUNS: "2",
    });
    assert.equal(c.modelServerUrl, "http://10.0.0.2:9000", name);
    assert.equal(c.modelLogFile, "/tmp/model.log", name);
    assert.equal(c.modelHealthUrl, "/healthz", name);
    assert.deepEqual(c.logActions.onLoad, ["up and running"], name);
    assert.deepEqual(c.logActions.onError, ["fatal one", "fatal two"], name);
    assert.deepEqual(c.logActions.onInfo, ["note"], name);
    assert.equal(c.readiness, "healthcheck", name);
    assert.equal(c.handlers[0].maxQueueTime, 42, name);
    assert.equal(c.handlers.find((h) => h.benchmark)?.benchmark?.runs, 2);
  }
  // Blank values keep the defaults.
  const c = configOf("sglang", { MODEL_ERROR_LOG_MSGS: " \n", MODEL_LOG: "" });
  assert.equal(c.modelLogFile, "/var/log/portal/sglang.log");
  assert.ok(c.logActions.onError.includes("Scheduler hit an exception"));
  assert.throws(
    () => configOf("tgi", { READINESS: "sometimes" }),
    (e: unknown) =>
      e instanceof ConfigError &&
      /READINESS: expected one of logs, healthcheck, both, none/.test(
        e.message,
      ),
  );
});

Deno.test("BENCHMARK_JSON_PATH: read at build time, a bad file is a clear error", async () => {
  await withTempDir(async (dir) => {
    const graph = aceWorkflow("lo-fi", "[inst]");
    await Deno.writeTextFile(`${dir}/graph.json`, JSON.stringify(graph));
    for (const name of ["comfyui", "wan", "ace"]) {
      const c = configOf(name, { BENCHMARK_JSON_PATH: `${dir}/graph.json` });
      const a = benchmarkPayload(c).payload.input as Record<string, unknown>;
      const b = benchmarkPayload(c).payload.input as Record<string, unknown>;
      assert.deepEqual(a.workflow_json, graph, name);
      assert.notEqual(a.request_id, b.request_id, "a fresh request id");
    }
    // A whole payload is accepted as is.
    const payload = {
      input: { modifier: "Text2Image", modifications: { width: 1024 } },
    };
    await Deno.writeTextFile(`${dir}/payload.json`, JSON.stringify(payload));
    const c = configOf("comfyui", {
      BENCHMARK_JSON_PATH: `${dir}/payload.json`,
      EDGEWORKER_WORKLOAD: "estimate",
    });
    const p = benchmarkPayload(c).payload;
    assert.deepEqual(
      (p.input as Record<string, unknown>).modifications,
      { width: 1024 },
    );
    assert.equal(workload(c, "/generate/sync")(p), 200);

    const problems: [string, string, RegExp][] = [
      ["missing.json", "", /BENCHMARK_JSON_PATH: cannot read .*missing\.json/],
      [
        "bad.json",
        "{not json",
        /BENCHMARK_JSON_PATH: .*bad\.json is not valid JSON/,
      ],
      ["list.json", "[1, 2]", /must hold a JSON object/],
      [
        "ui.json",
        JSON.stringify({ nodes: [], links: [], version: 0.4 }),
        /UI-format workflow/,
      ],
      [
        "nodes.json",
        JSON.stringify({ "3": { inputs: {} } }),
        /node "3" has no "class_type"/,
      ],
    ];
    for (const [file, text, pattern] of problems) {
      if (text) await Deno.writeTextFile(`${dir}/${file}`, text);
      assert.throws(
        () =>
          findPreset("comfyui")!.config({
            BENCHMARK_JSON_PATH: `${dir}/${file}`,
          }),
        (e: unknown) =>
          e instanceof ConfigError && /preset comfyui/.test(e.message) &&
          pattern.test(e.message),
        file,
      );
    }
  });
});

Deno.test("generic: everything from env, clear errors when something is missing", async () => {
  const generic = findPreset("generic")!;
  assert.throws(
    () => generic.config({}),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message.includes("preset generic") &&
      e.message.includes("MODEL_SERVER_URL: required"),
  );
  const plain = configOf("generic", {
    MODEL_SERVER_URL: "http://127.0.0.1:8000",
  });
  assert.deepEqual(plain.handlers.map((h) => h.route), ["/generate"]);
  assert.equal(plain.handlers[0].allowParallelRequests, false);
  assert.equal(plain.readiness, "none");
  assert.equal(plain.handlers[0].benchmark, undefined);
  assert.equal(workload(plain, "/generate")({}), 100);

  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/bench.json`,
      JSON.stringify([{ q: 1 }, { q: 2 }]),
    );
    const c = configOf("generic", {
      MODEL_SERVER_URL: "http://127.0.0.1:8000",
      EDGEWORKER_ROUTES: "/a, /b=/v2/b",
      EDGEWORKER_PARALLEL: "yes",
      EDGEWORKER_WORKLOAD: "12.5",
      MODEL_LOG: `${dir}/server.log`,
      MODEL_LOAD_LOG_MSG: "ready",
      MODEL_HEALTH_ENDPOINT: "/ping",
      BENCHMARK_JSON_PATH: `${dir}/bench.json`,
      BENCHMARK_ROUTE: "/b",
    });
    assert.deepEqual(
      c.handlers.map((h) => [h.route, h.upstreamRoute]),
      [["/a", undefined], ["/b", "/v2/b"]],
    );
    assert.ok(c.handlers.every((h) => h.allowParallelRequests));
    assert.equal(workload(c, "/b")({ anything: true }), 12.5);
    assert.equal(c.readiness, "both");
    assert.deepEqual(handler(c, "/b").benchmark?.dataset, [{ q: 1 }, { q: 2 }]);
    assert.equal(handler(c, "/a").benchmark, undefined);
  });

  const bad: [EnvVars, RegExp][] = [
    [{ EDGEWORKER_ROUTES: "a,b" }, /EDGEWORKER_ROUTES: "a" is not/],
    [{ EDGEWORKER_ROUTES: "/a=/b=/c" }, /EDGEWORKER_ROUTES/],
    [
      { MODEL_LOG: "/tmp/x.log" },
      /MODEL_LOAD_LOG_MSG: required with MODEL_LOG/,
    ],
    [{ READINESS: "logs" }, /MODEL_LOG: required when READINESS is "logs"/],
    [
      { READINESS: "healthcheck" },
      /MODEL_HEALTH_ENDPOINT: required when READINESS is "healthcheck"/,
    ],
    [{ BENCHMARK_ROUTE: "/other" }, /BENCHMARK_ROUTE: "\/other" is not one of/],
    [{ BENCHMARK_JSON_PATH: "/nonexistent/bench.json" }, /cannot read/],
  ];
  for (const [env, pattern] of bad) {
    assert.throws(
      () =>
        generic.config({ MODEL_SERVER_URL: "http://127.0.0.1:8000", ...env }),
      (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
      JSON.stringify(env),
    );
  }
});

Deno.test("log patterns against the stand-ins' real lines", () => {
  // OpenAI family: ready lines load, crash lines are fatal, failed-start
  // lines fatal or startup errors (fatal before ready); a request's
  // traceback is a startup error (counted once ready), its error line
  // nothing.
  for (const flavor of ["vllm", "sglang", "llama_cpp"] as const) {
    const c = configOf(flavor);
    const kinds = (lines: string[]) => lines.map((l) => classify(c, l));
    assert.ok(kinds(openAiLog.readyLines(flavor, 1)).includes("load"), flavor);
    assert.ok(!kinds(openAiLog.bootLines(flavor, "m", 1)).includes("load"));
    assert.ok(kinds(openAiLog.crashLines(flavor)).includes("error"), flavor);
    assert.ok(
      kinds(openAiLog.startupFailureLines(flavor, "m")).some((k) =>
        k === "error" || k === "startupError"
      ),
      flavor,
    );
    // llama-server is C++: it prints no Python traceback.
    assert.equal(
      classify(c, "Traceback (most recent call last):"),
      flavor === "llama_cpp" ? undefined : "startupError",
    );
    assert.equal(
      classify(c, openAiLog.requestErrorLine(flavor, "bad request")),
      undefined,
    );
  }
  const tgi = configOf("tgi");
  assert.equal(
    classify(tgi, tgiReadyLines(1).find((l) => l.includes("Connected"))!),
    "load",
  );
  assert.ok(tgiBootLines("m", 1).some((l) => classify(tgi, l) === "info"));
  assert.ok(
    tgiCrashLines("WebserverFailed").some((l) => classify(tgi, l) === "error"),
  );
  assert.ok(
    tgiCrashLines("ShardFailed").some((l) => classify(tgi, l) === "error"),
  );
  assert.ok(tgiStartupFailureLines().some((l) => classify(tgi, l) === "error"));
  assert.equal(
    classify(tgi, tgiRequestLine("generate", "Request failed: OOM")),
    undefined,
  );
  assert.equal(
    classify(
      tgi,
      '{"message":"Connected","target":"text_generation_router::server"}',
    ),
    "load",
  );

  // ComfyUI: BACKENDS_READY_TIMEOUT is an error, not a load line, and
  // per-request failures are neither.
  const comfy = configOf("comfyui");
  assert.equal(classify(comfy, comfyLog.ready()), "load");
  assert.equal(
    classify(comfy, "BACKENDS_READY (synthesised by pyworker readiness shim)"),
    "load",
  );
  assert.equal(classify(comfy, comfyLog.readyTimeout()), "error");
  assert.equal(classify(comfy, comfyLog.unrecoverable()), "error");
  assert.equal(
    classify(comfy, "ERROR:    Application startup failed. Exiting."),
    "error",
  );
  assert.equal(
    classify(comfy, "  - Value not in list: ckpt_name: 'x' not in []"),
    undefined,
  );
  assert.equal(
    classify(
      comfy,
      comfyLog.failed("id", "Generation failed: CUDA out of memory"),
    ),
    undefined,
  );
});

Deno.test("the listing shows routes, port, log and patterns of every preset", () => {
  const text = describePresets(PRESETS, {});
  for (const p of PRESETS) assert.match(text, new RegExp(`^${p.name}: `, "m"));
  assert.match(
    text,
    /tgi: .*\n {2}routes: {7}\/generate \[benchmark\], \/generate_stream\n {2}model server: http:\/\/127\.0\.0\.1:5001 \(port 5001, health \/health\)\n {2}log file: {5}\/workspace\/infer\.log/,
  );
  assert.match(text, /routes: {7}\/generate\/sync \(FIFO\) \[benchmark\]/);
  assert.match(text, /on load: {6}\/\\bBACKENDS_READY\\b\//);
  assert.match(text, /on error: {5}"BACKENDS_READY_TIMEOUT"/);
  assert.match(text, /generic: .*\n {2}needs: {8}MODEL_SERVER_URL: required/);
  const withUrl = describePresets([findPreset("generic")!], {
    MODEL_SERVER_URL: "http://127.0.0.1:8000",
  });
  assert.match(withUrl, /routes: {7}\/generate \(FIFO\)/);
  assert.match(withUrl, /benchmark: {4}none/);
});

Deno.test("the CLI refuses a preset whose env is unusable, naming the variable", async () => {
  const main = new URL("../main.ts", import.meta.url).pathname;
  const run = (preset: string, env: Record<string, string>) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, "run", "--preset", preset],
      env: { NO_COLOR: "1", MODEL_SERVER_URL: "", ...env },
      stdout: "piped",
      stderr: "piped",
    }).output();
  const [generic, comfy] = await Promise.all([
    run("generic", {}),
    run("comfyui", { BENCHMARK_JSON_PATH: "/nonexistent/benchmark.json" }),
  ]);
  assert.equal(generic.code, 2);
  assert.match(
    new TextDecoder().decode(generic.stderr),
    /preset generic:\n {2}MODEL_SERVER_URL: required/,
  );
  assert.equal(comfy.code, 2);
  assert.match(
    new TextDecoder().decode(comfy.stderr),
    /BENCHMARK_JSON_PATH: cannot read \/nonexistent\/benchmark\.json/,
  );
});

Deno.test("READINESS_TIMEOUT and HEALTHCHECK_PROBE_TIMEOUT as the 2026 Python worker reads them; SGLang probes may take 30 s", () => {
  const plain = configOf("vllm");
  assert.equal(plain.readinessTimeout, undefined, "log modes: no limit");
  assert.equal(plain.healthcheck?.timeoutSeconds, 10);
  const set = configOf("vllm", {
    READINESS_TIMEOUT: "3",
    HEALTHCHECK_PROBE_TIMEOUT: "20",
  });
  assert.equal(set.readinessTimeout, 3);
  assert.equal(set.healthcheck?.timeoutSeconds, 20);
  // Python's _env_float: a non-positive or malformed value keeps the default.
  const bad = configOf("vllm", {
    READINESS_TIMEOUT: "-1",
    HEALTHCHECK_PROBE_TIMEOUT: "soon",
  });
  assert.equal(bad.readinessTimeout, undefined);
  assert.equal(bad.healthcheck?.timeoutSeconds, 10);
  assert.equal(configOf("sglang").healthcheck?.timeoutSeconds, 30);
});
