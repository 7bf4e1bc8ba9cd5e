/**
 * The worker config as a user writes it ({@linkcode WorkerConfig},
 * {@linkcode HandlerConfig}, {@linkcode BenchmarkConfig},
 * {@linkcode LogActionConfig}: the names of Vast's Python SDK), and the
 * `Resolved*` forms validation gives back, every default filled in.
 *
 * Plain TypeScript types, independent of the validator: `schemas.ts`
 * checks at compile time that its schemas accept and produce exactly these.
 *
 * Longer than most modules: the whole public config vocabulary, each field documented, in one place.
 *
 * @module
 */

/** A JSON object as the model server receives it. */
export type Payload = Record<string, unknown>;

/**
 * Computes a request's workload (the units `max_perf` counts per second)
 * from its payload. A calculator that throws, or returns NaN, infinity or a
 * negative number, gives 100, as Vast's worker does.
 *
 * @example
 * ```ts
 * import type { WorkloadCalculator } from "./types.ts";
 * const byTokens: WorkloadCalculator = (p) => Number(p.max_tokens ?? 16);
 * ```
 */
export type WorkloadCalculator = (payload: Payload) => number;

/** Turns the client's payload into what the model server receives. */
export type RequestParser = (payload: Payload) => Payload;

/**
 * Builds the client's answer from the model server's response (the
 * default forwards status, allowed headers and body, streaming).
 */
export type ResponseGenerator = (
  response: Response,
  context: { payload: Payload; route: string },
) => Response | Promise<Response>;

/**
 * A log line pattern: a substring, a `RegExp` (TypeScript only) or
 * `{ regex: "..." }` (the YAML form of a regex).
 */
export type LogPattern = string | RegExp | { regex: string };

/**
 * Log lines that mark the model loaded, broken, or worth logging
 * (Python's `LogActionConfig(on_load, on_error, on_info)`).
 */
export interface LogActionConfig {
  /** A line matching one of these marks the model loaded. @default {[]} */
  onLoad?: LogPattern[];
  /** A line matching one of these is a fatal model error. @default {[]} */
  onError?: LogPattern[];
  /** Lines matching these are logged by the worker. @default {[]} */
  onInfo?: LogPattern[];
}

/** {@linkcode LogActionConfig} after validation: every list present. */
export type ResolvedLogActionConfig = Required<LogActionConfig>;

/** Workload rule: the same workload for every request. */
export interface ConstantWorkload {
  /** Selects this rule. */
  kind: "constant";
  /** The workload of each request. */
  value: number;
}

/** Workload rule: a number read from the payload. */
export interface FieldWorkload {
  /** Selects this rule. */
  kind: "field";
  /** Dotted path of the number, e.g. `parameters.max_new_tokens`. */
  path: string;
  /** Used when the field is absent. @default {0} */
  default?: number;
}

/** {@linkcode FieldWorkload} after validation. */
export type ResolvedFieldWorkload = Required<FieldWorkload>;

/**
 * Workload rule: estimated tokens of the prompt (text length divided by
 * `charsPerToken`; no tokenizer) plus the requested output tokens.
 */
export interface TokensWorkload {
  /** Selects this rule. */
  kind: "tokens";
  /** Dotted paths of text (or arrays of text / chat messages). */
  fields: string[];
  /** Dotted paths of requested output tokens; the first present wins. @default {[]} */
  outputFields?: string[];
  /** Output tokens assumed when no output field is present. @default {0} */
  defaultOutput?: number;
  /** Characters per token of the estimate. @default {4} */
  charsPerToken?: number;
}

/** {@linkcode TokensWorkload} after validation. */
export type ResolvedTokensWorkload = Required<TokensWorkload>;

/**
 * A workload rule that YAML can express (a {@linkcode WorkloadCalculator}
 * is the TypeScript form).
 *
 * @example
 * ```ts
 * import type { DeclarativeWorkload } from "./types.ts";
 * const rule: DeclarativeWorkload = {
 *   kind: "tokens",
 *   fields: ["prompt"],
 *   outputFields: ["max_tokens"],
 *   defaultOutput: 16,
 * };
 * ```
 */
export type DeclarativeWorkload =
  | ConstantWorkload
  | FieldWorkload
  | TokensWorkload;

/** {@linkcode DeclarativeWorkload} after validation. */
export type ResolvedDeclarativeWorkload =
  | ConstantWorkload
  | ResolvedFieldWorkload
  | ResolvedTokensWorkload;

/**
 * How the startup benchmark measures throughput (`max_perf`); Python's
 * `BenchmarkConfig`. Give a `generator` or a `dataset`.
 */
export interface BenchmarkConfig {
  /** TypeScript only: returns one benchmark payload per call. */
  generator?: () => Payload;
  /** Payloads picked at random per request. */
  dataset?: Payload[];
  /** Timed rounds; `max_perf` is the best. @default {3} */
  runs?: number;
  /** Requests per round (parallel handlers only; FIFO ones send 1). @default {10} */
  concurrency?: number;
  /** One untimed request first (Python's `do_warmup`). @default {true} */
  warmup?: boolean;
}

/** {@linkcode BenchmarkConfig} after validation: defaults filled in. */
export interface ResolvedBenchmarkConfig extends BenchmarkConfig {
  /** Timed rounds. */
  runs: number;
  /** Requests per round. */
  concurrency: number;
  /** Whether an untimed request goes first. */
  warmup: boolean;
}

/**
 * Limits on one model call, in seconds; `null` turns one off. Each expiry
 * aborts the model call, answers 504 naming the limit (or ends a stream
 * already under way) and records the request as an error. An unset limit
 * is the worker's, else the default.
 */
export interface TimeoutsConfig {
  /** From sending the request until the model's answer starts. @default {1800} */
  firstByte?: number | null;
  /** Without a byte from the model once its answer started. @default {600} */
  idle?: number | null;
  /** From sending the request until its answer ended. @default {null} */
  total?: number | null;
}

/**
 * Bounds of an adaptive slot count (`maxConcurrency: "auto"`): the count
 * follows the model server's time to first byte and, with
 * `engineMetrics`, its own waiting queue; it never leaves [min, max].
 */
export interface AutoConcurrencyConfig {
  /** Fewest slots. @default {1} */
  min?: number;
  /** Most slots; the count never exceeds it. @default {128} */
  max?: number;
  /** Slots at start. @default {min(max, max(min, 8))} */
  initial?: number;
  /**
   * First byte allowed over the unloaded one, as a factor above 1; the
   * count settles where first bytes take this much longer.
   * @default {1.5}
   */
  tolerance?: number;
}

/** {@linkcode AutoConcurrencyConfig} after validation. */
export interface ResolvedAutoConcurrencyConfig extends AutoConcurrencyConfig {
  /** Fewest slots. */
  min: number;
  /** Most slots. */
  max: number;
  /** First byte allowed over the unloaded one, as a factor. */
  tolerance: number;
}

/**
 * One route of the worker, forwarded to the same path (or
 * `upstreamRoute`) on the model server; Python's `HandlerConfig`.
 *
 * @example
 * ```ts
 * import type { HandlerConfig } from "./types.ts";
 * const completions: HandlerConfig = {
 *   route: "/v1/completions",
 *   allowParallelRequests: true,
 *   maxQueueTime: 600,
 *   workload: (payload) => Number(payload.max_tokens ?? 16),
 *   benchmark: { dataset: [{ prompt: "hello", max_tokens: 128 }] },
 * };
 * ```
 */
export interface HandlerConfig {
  /** Path the worker serves, starting with `/`. */
  route: string;
  /** Path on the model server. @default {route} */
  upstreamRoute?: string;
  /**
   * `true`: requests run side by side (up to `maxConcurrency`); `false`:
   * strict FIFO, one at a time across all such handlers.
   * @default {false}
   */
  allowParallelRequests?: boolean;
  /** Seconds of estimated queue wait above which requests get 429; `null`: none. @default {30} */
  maxQueueTime?: number | null;
  /**
   * Parallel handlers: at most this many at once, FIFO beyond; `"auto"`:
   * a count that follows the model server (bounds in `autoConcurrency`).
   * @default {unlimited}
   */
  maxConcurrency?: number | "auto";
  /** Bounds of `maxConcurrency: "auto"`. */
  autoConcurrency?: AutoConcurrencyConfig;
  /** A request's workload: a function or a declarative rule. @default {{ kind: "constant", value: 100 }} */
  workload?: WorkloadCalculator | DeclarativeWorkload;
  /** YAML form of the common request parser: forward `payload.input` if set. @default {false} */
  unwrapInput?: boolean;
  /** Rewrites the payload before it is forwarded. */
  requestParser?: RequestParser;
  /** Builds the client's answer from the model's response. */
  responseGenerator?: ResponseGenerator;
  /** The startup benchmark; at most one handler has one. */
  benchmark?: BenchmarkConfig;
  /** This route's limits; each unset one is the worker's. */
  timeouts?: TimeoutsConfig;
}

/** {@linkcode HandlerConfig} after validation: defaults filled in. */
export interface ResolvedHandlerConfig extends HandlerConfig {
  /** Whether requests run side by side. */
  allowParallelRequests: boolean;
  /** Seconds of estimated queue wait above which requests get 429; `null`: none. */
  maxQueueTime: number | null;
  /** The workload: a function or a resolved rule. */
  workload: WorkloadCalculator | ResolvedDeclarativeWorkload;
  /** Whether `payload.input` is forwarded when set. */
  unwrapInput: boolean;
  /** The startup benchmark, resolved. */
  benchmark?: ResolvedBenchmarkConfig;
  /** Bounds of `maxConcurrency: "auto"`, resolved. */
  autoConcurrency?: ResolvedAutoConcurrencyConfig;
}

/** Probing of the model server's health URL (`modelHealthUrl`). */
export interface HealthcheckConfig {
  /** Seconds between probes. @default {10} */
  intervalSeconds?: number;
  /** Seconds one probe may take (Python's `healthcheck_probe_timeout`). @default {10} */
  timeoutSeconds?: number;
  /** Failed probes in a row that make the worker report an error. @default {3} */
  failureThreshold?: number;
}

/** {@linkcode HealthcheckConfig} after validation. */
export type ResolvedHealthcheckConfig = Required<HealthcheckConfig>;

/** Engine metrics scraped from the model server's Prometheus endpoint. */
export interface EngineMetricsConfig {
  /** Which engine's metric names to read. */
  kind: "vllm" | "sglang" | "tgi";
  /** Path of the metrics endpoint on the model server. @default {"/metrics"} */
  path?: string;
  /** Seconds between scrapes. @default {5} */
  intervalSeconds?: number;
}

/** {@linkcode EngineMetricsConfig} after validation. */
export type ResolvedEngineMetricsConfig = Required<EngineMetricsConfig>;

/**
 * How readiness is learned: the `onLoad` log line, the health URL, both,
 * or neither (ready once the benchmark ran).
 */
export type ReadinessMode = "logs" | "healthcheck" | "both" | "none";

/**
 * The whole worker, as written in TypeScript or YAML; Python's
 * `WorkerConfig`.
 *
 * @example
 * ```ts
 * import type { WorkerConfig } from "./types.ts";
 * const config: WorkerConfig = {
 *   modelServerUrl: "http://127.0.0.1:18000",
 *   modelLogFile: "/var/log/model.log",
 *   logActions: { onLoad: ["server ready"], onError: ["CUDA out of memory"] },
 *   handlers: [{ route: "/generate", allowParallelRequests: true }],
 * };
 * ```
 */
export interface WorkerConfig {
  /** Base URL of the model server, e.g. `http://127.0.0.1:18000`. */
  modelServerUrl: string;
  /** Log file of the model server to tail for load and error lines. */
  modelLogFile?: string;
  /** Health path (`/health`) or full URL of the model server. */
  modelHealthUrl?: string;
  /**
   * How readiness is learned.
   * @default {"logs" with a log file, else "healthcheck" with a health URL, else "none"}
   */
  readiness?: ReadinessMode;
  /**
   * Seconds to wait for readiness before reporting an error; `null`: no
   * limit. Unset: none in the log modes (as Python: a first boot that
   * downloads a large model may take hours), 1800 in `healthcheck` mode.
   */
  readinessTimeout?: number | null;
  /** Probing of `modelHealthUrl`. */
  healthcheck?: HealthcheckConfig;
  /** Log lines that mark the model loaded, broken or worth logging. */
  logActions?: LogActionConfig;
  /** The routes served; at least one, each route once. */
  handlers: HandlerConfig[];
  /** Most sessions at once; 0 means unlimited. @default {10} */
  maxSessions?: number;
  /** Limits of every route's model calls. */
  timeouts?: TimeoutsConfig;
  /** Engine metrics to scrape into `/metrics`. */
  engineMetrics?: EngineMetricsConfig;
}

/**
 * {@linkcode WorkerConfig} after validation (what
 * `parseWorkerConfig` returns and `Worker.config` holds).
 */
export interface ResolvedWorkerConfig extends WorkerConfig {
  /** Seconds to wait for readiness before reporting an error (see above). */
  readinessTimeout?: number | null;
  /** Health probing, resolved. */
  healthcheck: ResolvedHealthcheckConfig;
  /** Log actions, resolved. */
  logActions: ResolvedLogActionConfig;
  /** The routes, resolved. */
  handlers: ResolvedHandlerConfig[];
  /** Most sessions at once; 0 means unlimited. */
  maxSessions: number;
  /** Limits of every route's model calls (unset ones: the defaults). */
  timeouts: TimeoutsConfig;
  /** Engine metrics, resolved. */
  engineMetrics?: ResolvedEngineMetricsConfig;
}
