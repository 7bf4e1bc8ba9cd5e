/**
 * What a preset is, and the env overrides every preset honours the way the
 * Python workers read them.
 *
 * @module
 */
import {
  type HandlerConfig,
  type Payload,
  READINESS_MODES,
  type ReadinessMode,
  type WorkerConfig,
} from "../lib/config/schemas.ts";
import { strtobool } from "../lib/config/env.ts";
import { ConfigError } from "../lib/config/validate.ts";

/**
 * The canary timing of the local LLM presets: a one-token request costs
 * milliseconds of an idle GPU, so it runs after 2 idle minutes. Presets
 * whose smallest request is a whole image or video job (ComfyUI, Wan,
 * ACE) and `generic` (which may front a paid API) have none.
 */
export const LLM_CANARY = {
  idleSeconds: 120,
  deadlineSeconds: 30,
  failureThreshold: 2,
} as const;

/** Environment variables as a plain record. */
export type EnvVars = Record<string, string | undefined>;

/** A named, ready-made worker config for one model server. */
export interface Preset {
  /** Name for `--preset` and `BACKEND`. */
  readonly name: string;
  /** Other names accepted, e.g. the Python worker's `BACKEND` value. */
  readonly aliases?: readonly string[];
  /** One line for `edgeworker presets`. */
  readonly description: string;
  /** How the workload of a request is computed, for docs and listings. */
  readonly workloadRule: string;
  /** Environment variables the preset reads besides the common ones. */
  readonly envVars?: readonly string[];
  /**
   * Builds the config from the environment.
   *
   * @throws {ConfigError} when a variable is missing or unusable
   */
  config(env: EnvVars): WorkerConfig;
}

/** A {@linkcode ConfigError} naming the preset and the variable at fault. */
export function presetError(
  preset: string,
  ...problems: string[]
): ConfigError {
  return new ConfigError(`preset ${preset}`, problems);
}

/** Newline-separated patterns (`MODEL_ERROR_LOG_MSGS`), or the defaults. */
export function patternsFrom<T>(
  value: string | undefined,
  defaults: T[],
): (string | T)[] {
  if (value === undefined || value.trim() === "") return defaults;
  return value.split("\n").map((l) => l.trim()).filter((l) => l !== "");
}

/** `MODEL_SERVER_URL` or the preset's default. */
export function modelServerUrlFrom(env: EnvVars, fallback: string): string {
  return env.MODEL_SERVER_URL?.trim() || fallback;
}

/** A log pattern a preset defaults to: a substring or a regex. */
export type LogPattern = string | RegExp;

/** A preset's model server as it runs unless the environment says otherwise. */
export interface ModelServerDefaults {
  /** Base URL, unless `MODEL_SERVER_URL` is set. */
  url: string;
  /** Log file, unless `MODEL_LOG` is set; none: no log unless it is. */
  logFile?: string;
  /** Health path or URL, unless `MODEL_HEALTH_ENDPOINT` is set; none: no
   * health check unless it is. */
  health?: string;
  /** Loaded, unless `MODEL_LOAD_LOG_MSG` is set. */
  onLoad: LogPattern[];
  /** Fatal, unless `MODEL_ERROR_LOG_MSGS` is set. */
  onError: LogPattern[];
  /** Fatal before the first ready, counted after. @default {[]} */
  onStartupError?: LogPattern[];
  /** Worth logging, unless `MODEL_INFO_LOG_MSGS` is set. */
  onInfo: LogPattern[];
  /** supervisord program on Vast's image, for supervisord's own log. */
  supervisorProgram?: string;
  /** Seconds a health probe may take, unless `HEALTHCHECK_PROBE_TIMEOUT` is set. @default {10} */
  probeTimeoutSeconds?: number;
}

/** The model-server part of a preset's config. */
export interface ModelServerConfig {
  modelServerUrl: string;
  modelLogFile?: string;
  modelHealthUrl?: string;
  readiness: ReadinessMode;
  readinessTimeout?: number;
  healthcheck?: { timeoutSeconds: number };
  logActions: {
    onLoad: LogPattern[];
    onError: LogPattern[];
    onStartupError: LogPattern[];
    onInfo: LogPattern[];
  };
  supervisorProgram?: string;
}

/**
 * The model server, its log, health check, log patterns and readiness from
 * the environment, else from `defaults`. Readiness is `READINESS`, else
 * `both` with a log and a health check, the one of them there is, or `none`.
 *
 * @throws {ConfigError} for a `READINESS` that is not a readiness mode
 */
export function modelServerFrom(
  preset: string,
  env: EnvVars,
  defaults: ModelServerDefaults,
): ModelServerConfig {
  const log = env.MODEL_LOG?.trim() || defaults.logFile;
  const health = env.MODEL_HEALTH_ENDPOINT?.trim() || defaults.health;
  return {
    modelServerUrl: modelServerUrlFrom(env, defaults.url),
    ...(log ? { modelLogFile: log } : {}),
    ...(health ? { modelHealthUrl: health } : {}),
    readiness: readinessFrom(
      preset,
      env,
      log && health ? "both" : log ? "logs" : health ? "healthcheck" : "none",
    ),
    // As the 2026 Python worker reads them; unset: the config's defaults.
    readinessTimeout: positiveFrom(env.READINESS_TIMEOUT),
    healthcheck: {
      timeoutSeconds: numberFrom(
        env.HEALTHCHECK_PROBE_TIMEOUT,
        defaults.probeTimeoutSeconds ?? 10,
      ),
    },
    logActions: {
      onLoad: patternsFrom(env.MODEL_LOAD_LOG_MSG, defaults.onLoad),
      onError: patternsFrom(env.MODEL_ERROR_LOG_MSGS, defaults.onError),
      onStartupError: defaults.onStartupError ?? [],
      onInfo: patternsFrom(env.MODEL_INFO_LOG_MSGS, defaults.onInfo),
    },
    ...(defaults.supervisorProgram
      ? { supervisorProgram: defaults.supervisorProgram }
      : {}),
  };
}

/** The variables {@linkcode benchmarkSizeFrom} reads. */
export const BENCHMARK_SIZE_ENV_VARS: readonly string[] = [
  "BENCHMARK_RUNS",
  "BENCHMARK_CONCURRENCY",
];

/** `BENCHMARK_CONCURRENCY` (10) requests at once, `BENCHMARK_RUNS` (3) times. */
export function benchmarkSizeFrom(
  env: EnvVars,
): { concurrency: number; runs: number } {
  return {
    concurrency: numberFrom(env.BENCHMARK_CONCURRENCY, 10),
    runs: numberFrom(env.BENCHMARK_RUNS, 3),
  };
}

/** The handlers of a model server whose routes all run in parallel. */
export interface ParallelRoutes {
  /** The benchmarked route first; an object adds to or overrides `shared`. */
  routes: readonly (string | HandlerConfig)[];
  /** Seconds of estimated queue above which 429, unless `MAX_QUEUE_TIME`. */
  maxQueueTime: number;
  /** What every route has besides `route`: workload, parser, … */
  shared: Omit<HandlerConfig, "route">;
  /** A benchmark payload for the first route. */
  benchmark: () => Payload;
}

/**
 * One parallel handler per route, the first one benchmarked with
 * {@linkcode benchmarkSizeFrom} runs.
 */
export function parallelHandlers(
  env: EnvVars,
  spec: ParallelRoutes,
): HandlerConfig[] {
  const common = {
    allowParallelRequests: true,
    maxQueueTime: numberFrom(env.MAX_QUEUE_TIME, spec.maxQueueTime),
    ...spec.shared,
  };
  return spec.routes.map((r, i) => ({
    ...common,
    ...(typeof r === "string" ? { route: r } : r),
    ...(i === 0
      ? {
        benchmark: { generator: spec.benchmark, ...benchmarkSizeFrom(env) },
      }
      : {}),
  }));
}

/**
 * The variables a preset lists, in listing order: those of
 * {@linkcode modelServerFrom} (with `afterLog`, e.g. `MODEL_NAME`, after
 * `MODEL_LOG`), `MAX_QUEUE_TIME`, then the benchmark's.
 */
export function presetEnvVars(
  benchmark: readonly string[],
  afterLog: readonly string[] = [],
): string[] {
  return [
    "MODEL_SERVER_URL",
    "MODEL_LOG",
    ...afterLog,
    "MODEL_HEALTH_ENDPOINT",
    "MODEL_LOAD_LOG_MSG",
    "MODEL_ERROR_LOG_MSGS",
    "MODEL_INFO_LOG_MSGS",
    "READINESS",
    "READINESS_TIMEOUT",
    "HEALTHCHECK_PROBE_TIMEOUT",
    "MAX_QUEUE_TIME",
    ...benchmark,
  ];
}

/** A positive number from the environment, or the default. */
export function numberFrom(
  value: string | undefined,
  fallback: number,
): number {
  const n = Number(value);
  return value !== undefined && value.trim() !== "" && Number.isFinite(n) &&
      n > 0
    ? n
    : fallback;
}

/**
 * How a preset counts a request's workload (`EDGEWORKER_WORKLOAD`):
 * `requested`, what the Python worker and Vast's client count (the client
 * sends `cost = max_tokens`), so `max_perf`, `cur_load` and the client's
 * cost agree; or `estimate`, which adds the prompt's estimated tokens (or,
 * for ComfyUI, scales by pixels × steps): closer to the GPU's real work,
 * but in other units than the client's cost.
 */
export type WorkloadRule = "requested" | "estimate";

/** `EDGEWORKER_WORKLOAD` as a {@linkcode WorkloadRule}; `requested` when unset. */
export function workloadRuleFrom(preset: string, env: EnvVars): WorkloadRule {
  const v = env.EDGEWORKER_WORKLOAD?.trim().toLowerCase();
  if (!v || v === "requested") return "requested";
  if (v === "estimate") return "estimate";
  throw presetError(
    preset,
    `EDGEWORKER_WORKLOAD: expected "requested" or "estimate", got "${env.EDGEWORKER_WORKLOAD}"`,
  );
}

/**
 * `EDGEWORKER_DEFAULT_MAX_TOKENS`: a positive whole number, else `fallback`
 * when unset. A setting of our own, so a bad value is an error naming it.
 */
export function defaultMaxTokensFrom(
  preset: string,
  env: EnvVars,
  fallback: number,
): number {
  const v = env.EDGEWORKER_DEFAULT_MAX_TOKENS?.trim();
  if (!v) return fallback;
  const n = Number(v);
  if (Number.isInteger(n) && n > 0) return n;
  throw presetError(
    preset,
    `EDGEWORKER_DEFAULT_MAX_TOKENS: expected a positive whole number, got "${env.EDGEWORKER_DEFAULT_MAX_TOKENS}"`,
  );
}

/** A positive number of the environment, else undefined (Python's `_env_float` rule). */
export function positiveFrom(value: string | undefined): number | undefined {
  const n = numberFrom(value, NaN);
  return Number.isNaN(n) ? undefined : n;
}

/** A Python `strtobool`-style flag from the environment, or the default. */
export function booleanFrom(
  value: string | undefined,
  fallback: boolean,
): boolean {
  return value === undefined ? fallback : strtobool(value) ?? fallback;
}

/**
 * `READINESS` (as the 2026 openai worker reads it), or the preset's mode.
 *
 * @throws {ConfigError} for a value that is not a readiness mode
 */
export function readinessFrom(
  preset: string,
  env: EnvVars,
  fallback: ReadinessMode,
): ReadinessMode {
  const v = env.READINESS?.trim().toLowerCase();
  if (!v) return fallback;
  if ((READINESS_MODES as readonly string[]).includes(v)) {
    return v as ReadinessMode;
  }
  throw presetError(
    preset,
    `READINESS: expected one of ${
      READINESS_MODES.join(", ")
    }, got "${env.READINESS}"`,
  );
}

/**
 * Reads and parses a JSON file while the config is built (so a bad path is
 * reported at start, not at the first benchmark).
 *
 * @throws {ConfigError} naming `variable` when the file is missing or bad
 */
export function readJsonFile(
  preset: string,
  variable: string,
  path: string,
): unknown {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw presetError(
      preset,
      `${variable}: cannot read ${path}: ${
        e instanceof Error ? e.message : String(e)
      }`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw presetError(
      preset,
      `${variable}: ${path} is not valid JSON: ${
        e instanceof Error ? e.message : String(e)
      }`,
    );
  }
}

/** A plain JSON object (not an array, not null). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A finite number `>= 0`, or undefined. */
export function finiteNumber(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;
}
