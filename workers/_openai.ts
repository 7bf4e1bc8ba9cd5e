/**
 * The OpenAI-compatible family (vLLM, SGLang, llama.cpp): routes, workload
 * and benchmark shared by their presets.
 *
 * Every engine serves `/v1/completions` (the benchmark route) and
 * `/v1/chat/completions`, plus `/v1/embeddings` where the engine has it;
 * `OPENAI_ROUTES` picks others of the 2026 Python worker (rerank, score,
 * speech, images, chat batches, ...: `_openai_routes.ts`) and
 * `BENCHMARK_ROUTE` the one benchmarked. Bodies are forwarded bare, or
 * unwrapped from the old `{"input": {...}}` shape. Streaming
 * (`"stream": true`) is relayed as the engine sends it.
 *
 * @module
 */
import type {
  HandlerConfig,
  Payload,
  WorkerConfig,
} from "../lib/config/schemas.ts";
import { estimateTokens } from "../lib/traffic/workload.ts";
import {
  BENCHMARK_SIZE_ENV_VARS,
  defaultMaxTokensFrom,
  type EnvVars,
  LLM_CANARY,
  modelServerFrom,
  numberFrom,
  presetEnvVars,
  presetError,
  type WorkloadRule,
  workloadRuleFrom,
} from "./_preset.ts";
import {
  DEFAULT_EMBED_CHARS,
  extraRoutes,
  type OpenAiRoute,
  UPLOAD_ROUTES,
} from "./_openai_routes.ts";
import { randomWords } from "./_words.ts";

/** What differs between OpenAI-compatible engines. */
export interface OpenAiEngine {
  /** Preset name, for error messages. */
  name?: string;
  modelServerUrl: string;
  logFile: string;
  onLoad: (string | RegExp)[];
  onError: (string | RegExp)[];
  /** Fatal before the first ready, counted after. */
  onStartupError: (string | RegExp)[];
  onInfo: (string | RegExp)[];
  /** supervisord program name on Vast's image. */
  supervisorProgram: string;
  /** Env var naming the served model, besides `MODEL_NAME`. */
  modelEnv: string;
  embeddings: boolean;
  engineMetrics?: "vllm" | "sglang";
  /** Output tokens assumed when a request names none. @default 16 */
  defaultOutputTokens?: number;
  /** Seconds a `/health` probe may take. @default 10 */
  probeTimeoutSeconds?: number;
}

/** Output tokens assumed when a completion names none (vLLM's and SGLang's default). */
export const DEFAULT_OUTPUT_TOKENS = 16;

/**
 * Output tokens assumed when a chat request names none. vLLM and SGLang
 * then generate up to the remaining context (`max_model_len - prompt`),
 * which the worker cannot know; a fixed figure, never 0 (Python counts 0:
 * such a request would look free). `EDGEWORKER_DEFAULT_MAX_TOKENS` sets it.
 */
export const CHAT_DEFAULT_OUTPUT_TOKENS = 1024;

/** Env vars the OpenAI-compatible presets read. */
export const OPENAI_ENV_VARS: readonly string[] = [
  ...presetEnvVars(BENCHMARK_SIZE_ENV_VARS, ["MODEL_NAME"]),
  "EDGEWORKER_WORKLOAD",
  "EDGEWORKER_DEFAULT_MAX_TOKENS",
  "OPENAI_ROUTES",
  "BENCHMARK_ROUTE",
  "BENCHMARK_EMBED_CHARS",
  "BENCHMARK_SPEECH_VOICE",
];

/** The route benchmarked unless `BENCHMARK_ROUTE` names another (Python's default). */
export const DEFAULT_BENCHMARK_ROUTE = "/v1/completions";

/** The 2026 Python OpenAI worker's knobs, read once. */
export interface OpenAiSettings {
  /** `OPENAI_ROUTES`: the routes served; unset: the defaults and the benchmark route. */
  routes?: string[];
  /** `BENCHMARK_ROUTE`. */
  benchmarkRoute: string;
  /** `BENCHMARK_EMBED_CHARS`: characters of the embeddings benchmark. */
  embedChars: number;
  /** `BENCHMARK_SPEECH_VOICE`: the `voice` of the speech benchmark. */
  speechVoice?: string;
}

/**
 * `OPENAI_ROUTES` (comma-separated), `BENCHMARK_ROUTE`,
 * `BENCHMARK_EMBED_CHARS` and `BENCHMARK_SPEECH_VOICE`; unset or empty
 * takes the default, as in Python.
 *
 * @throws {ConfigError} for a `BENCHMARK_EMBED_CHARS` that is not a
 * positive whole number (Python warns and uses 600)
 */
export function openAiSettingsFrom(
  preset: string,
  env: EnvVars,
): OpenAiSettings {
  const routes = (env.OPENAI_ROUTES ?? "").split(",").map((r) => r.trim())
    .filter((r) => r !== "");
  const chars = env.BENCHMARK_EMBED_CHARS?.trim();
  const embedChars = chars ? Number(chars) : DEFAULT_EMBED_CHARS;
  if (!Number.isInteger(embedChars) || embedChars <= 0) {
    throw presetError(
      preset,
      `BENCHMARK_EMBED_CHARS: expected a positive whole number, got "${env.BENCHMARK_EMBED_CHARS}"`,
    );
  }
  const voice = env.BENCHMARK_SPEECH_VOICE?.trim();
  return {
    ...(routes.length > 0 ? { routes: [...new Set(routes)] } : {}),
    benchmarkRoute: env.BENCHMARK_ROUTE?.trim() || DEFAULT_BENCHMARK_ROUTE,
    embedChars,
    ...(voice ? { speechVoice: voice } : {}),
  };
}

/**
 * The output tokens a request asks for: `max_tokens` (what the Python
 * worker and Vast's client read), else `max_completion_tokens` (OpenAI's
 * newer name), else `defaultOutput`.
 */
export function requestedTokens(
  payload: Payload,
  defaultOutput: number,
): number {
  for (const v of [payload.max_tokens, payload.max_completion_tokens]) {
    if (typeof v === "number" && v >= 0) return v;
  }
  return defaultOutput;
}

/**
 * A request's workload: the requested output tokens (`requested`, Python's
 * rule), or those plus the prompt's tokens estimated from its text length
 * (`estimate`).
 */
export function openAiWorkloadWith(
  defaultOutput: number,
  rule: WorkloadRule = "requested",
): (payload: Payload) => number {
  if (rule === "requested") {
    return (payload) => requestedTokens(payload, defaultOutput);
  }
  return (payload) =>
    estimateTokens(payload.prompt) + estimateTokens(payload.messages) +
    estimateTokens(payload.input) + requestedTokens(payload, defaultOutput);
}

/** The completions rule of vLLM's preset: requested tokens, 16 when absent. */
export const openAiWorkload: (payload: Payload) => number = openAiWorkloadWith(
  DEFAULT_OUTPUT_TOKENS,
);

/** Embeddings produce no tokens: the input size is the work. */
export function embeddingWorkload(payload: Payload): number {
  return Math.max(1, estimateTokens(payload.input));
}

/** The served model: `MODEL_NAME`, else the engine's own variable. */
export function modelNameFrom(
  env: EnvVars,
  engineVar: string,
): string | undefined {
  return env.MODEL_NAME?.trim() || env[engineVar]?.trim() || undefined;
}

/** Builds the config of an OpenAI-compatible engine. */
export function openAiConfig(
  engine: OpenAiEngine,
  env: EnvVars,
): WorkerConfig {
  // Without a name the field is left out: every engine then uses the one
  // model it serves (a wrong name would fail the whole benchmark with 404).
  const model = modelNameFrom(env, engine.modelEnv);
  const rule = workloadRuleFrom(engine.name ?? "openai", env);
  const name = engine.name ?? "openai";
  const settings = openAiSettingsFrom(name, env);
  const completionsDefault = defaultMaxTokensFrom(
    name,
    env,
    engine.defaultOutputTokens ?? DEFAULT_OUTPUT_TOKENS,
  );
  const chatDefault = defaultMaxTokensFrom(
    name,
    env,
    CHAT_DEFAULT_OUTPUT_TOKENS,
  );
  const config: WorkerConfig = {
    ...modelServerFrom(engine.name ?? "openai", env, {
      url: engine.modelServerUrl,
      logFile: engine.logFile,
      health: "/health",
      probeTimeoutSeconds: engine.probeTimeoutSeconds,
      onLoad: engine.onLoad,
      onError: engine.onError,
      onStartupError: engine.onStartupError,
      onInfo: engine.onInfo,
      supervisorProgram: engine.supervisorProgram,
    }),
    handlers: openAiHandlers(name, env, {
      served: engine.embeddings
        ? ["/v1/completions", "/v1/chat/completions", "/v1/embeddings"]
        : ["/v1/completions", "/v1/chat/completions"],
      routes: [
        {
          route: "/v1/completions",
          workload: openAiWorkloadWith(completionsDefault, rule),
          benchmark: {
            concurrency: 10,
            runs: 3,
            generator: () => ({
              ...(model ? { model } : {}),
              prompt: randomWords(250),
              temperature: 0.7,
              max_tokens: 500,
            }),
          },
        },
        {
          route: "/v1/chat/completions",
          workload: openAiWorkloadWith(chatDefault, rule),
          benchmark: {
            concurrency: 10,
            runs: 3,
            generator: () => ({
              ...(model ? { model } : {}),
              messages: [{ role: "user", content: randomWords(250) }],
              temperature: 0.7,
              max_tokens: 500,
            }),
          },
        },
        ...extraRoutes({ ...settings, ...(model ? { model } : {}) }).map((
          r,
        ) =>
          // The richer estimate of embeddings: their input's tokens.
          r.route === "/v1/embeddings" && rule === "estimate"
            ? { ...r, workload: embeddingWorkload }
            : r
        ),
      ],
      settings,
    }),
    ...(engine.engineMetrics
      ? { engineMetrics: { kind: engine.engineMetrics } }
      : {}),
  };
  const canary = canaryFor(config.handlers, model);
  return canary ? { ...config, canary } : config;
}

/**
 * The smallest real request on a route the worker serves: one token of
 * completions, else of chat; none when `OPENAI_ROUTES` serves neither.
 */
function canaryFor(
  handlers: WorkerConfig["handlers"],
  model: string | undefined,
): WorkerConfig["canary"] {
  const served = new Set(handlers.map((h) => h.route));
  const common = {
    ...(model ? { model } : {}),
    max_tokens: 1,
    temperature: 0,
    stream: false,
  };
  const expectField = "choices.0";
  if (served.has("/v1/completions")) {
    return {
      route: "/v1/completions",
      payload: { ...common, prompt: "Hello" },
      expectField,
      ...LLM_CANARY,
    };
  }
  if (served.has("/v1/chat/completions")) {
    return {
      route: "/v1/chat/completions",
      payload: { ...common, messages: [{ role: "user", content: "Hello" }] },
      expectField,
      ...LLM_CANARY,
    };
  }
  return undefined;
}

/** The route table of {@linkcode openAiHandlers}. */
interface RouteTable {
  /** Served when `OPENAI_ROUTES` is unset (with the benchmark route). */
  served: string[];
  /** Every route there is, in serving order. */
  routes: OpenAiRoute[];
  settings: OpenAiSettings;
}

/**
 * The handlers `OPENAI_ROUTES` and `BENCHMARK_ROUTE` pick, as Python's
 * `_served_routes`: every route parallel with a 600 s queue budget
 * (`MAX_QUEUE_TIME`), the benchmark route benchmarked with Python's size
 * for it (`BENCHMARK_CONCURRENCY`, `BENCHMARK_RUNS` override).
 *
 * @throws {ConfigError} naming the variable: an unknown route (Python only
 * warns), an upload route, or a benchmark route that is not served
 */
function openAiHandlers(
  preset: string,
  env: EnvVars,
  table: RouteTable,
): HandlerConfig[] {
  const { settings } = table;
  const known = table.routes.map((r) => r.route);
  const bench = settings.benchmarkRoute;
  const notServed = (route: string) =>
    UPLOAD_ROUTES.includes(route)
      ? `${route} is an upload route (multipart form data), which edgeworker does not send yet`
      : `unknown route "${route}"; expected one of ${known.join(", ")}`;
  const problems: string[] = [];
  if (!known.includes(bench)) {
    problems.push(`BENCHMARK_ROUTE: ${notServed(bench)}`);
  }
  for (const r of settings.routes ?? []) {
    if (!known.includes(r)) problems.push(`OPENAI_ROUTES: ${notServed(r)}`);
  }
  const served = settings.routes ?? [...new Set([...table.served, bench])];
  if (problems.length === 0 && !served.includes(bench)) {
    problems.push(
      `OPENAI_ROUTES: leaves out the benchmark route ${bench}; add it, or set BENCHMARK_ROUTE to a route served`,
    );
  }
  if (problems.length > 0) throw presetError(preset, ...problems);
  return table.routes.filter((r) => served.includes(r.route)).map((r) => ({
    route: r.route,
    allowParallelRequests: true,
    maxQueueTime: numberFrom(env.MAX_QUEUE_TIME, 600),
    ...(r.requestParser
      ? { requestParser: r.requestParser }
      : { unwrapInput: true }),
    workload: r.workload,
    ...(r.route === bench
      ? {
        benchmark: {
          generator: r.benchmark.generator,
          concurrency: numberFrom(
            env.BENCHMARK_CONCURRENCY,
            r.benchmark.concurrency,
          ),
          runs: numberFrom(env.BENCHMARK_RUNS, r.benchmark.runs),
        },
      }
      : {}),
  }));
}
