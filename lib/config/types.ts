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

/** What a {@linkcode ResponseGenerator} is told besides the response. */
export interface ResponseContext {
  /** The payload as forwarded (after the request parser). */
  payload: Payload;
  /** The handler's route. */
  route: string;
  /**
   * The client's request (Python's `client_request`): its URL and headers.
   * Its body has been read already.
   */
  request: Request;
}

/**
 * Builds the client's answer from the model server's response (the
 * default forwards status, allowed headers and body, streaming); Python's
 * `response_generator(client_request, model_response)`.
 */
export type ResponseGenerator = (
  response: Response,
  context: ResponseContext,
) => Response | Promise<Response>;

/** What a {@linkcode RemoteFunction} is given besides the payload. */
export interface RemoteFunctionContext {
  /**
   * Aborted when the request must stop: the client went away, a timeout
   * expired, or the worker is shutting down. The answer is then dropped.
   */
  signal: AbortSignal;
  /** The handler's route. */
  route: string;
  /** The client's request (URL and headers; its body has been read). */
  request?: Request;
}

/**
 * A handler served by the worker itself instead of the model server
 * (Python's `remote_function`: "remote" as the client sees it). It gets
 * the payload (after the request parser) and answers with:
 *
 * - a `Response`: sent as it is (headers filtered as a model's are; a body
 *   without a length is streamed);
 * - an async iterable (not a string): streamed as JSON lines
 *   (`application/x-ndjson`), one item per line;
 * - anything else: `200 {"result": <value>}`, Python's answer (`undefined`
 *   is `null`).
 *
 * A throw is a 500 recorded as an error. The request is queued, timed,
 * signed, refused with 429 and accounted exactly as a forwarded one.
 *
 * @example
 * ```ts
 * import type { RemoteFunction } from "./types.ts";
 * const add: RemoteFunction = (p) => Number(p.a) + Number(p.b);
 * ```
 */
export type RemoteFunction = (
  payload: Payload,
  context: RemoteFunctionContext,
) => unknown;

/**
 * Called by a worker's shutdown: what a {@linkcode LifecycleHook}'s
 * promise may resolve to (Python's `__aexit__`).
 */
export type LifecycleStop = () => unknown;

/**
 * An async startup step for a worker with no model log to watch (Python's
 * `lifecycle`, an async context manager): the worker is loading until it
 * resolves, then benchmarks and is ready (after the health URL answers,
 * if one is set); when it throws, the worker reports
 * `Lifecycle startup failed: <message>` and never becomes ready. It may
 * resolve to a function the shutdown calls. `signal` aborts at shutdown.
 *
 * @example
 * ```ts
 * import type { LifecycleHook } from "./types.ts";
 * const hook: LifecycleHook = async () => {
 *   const server = Deno.serve({ port: 0, onListen() {} }, () => new Response("ok"));
 *   return () => server.shutdown();
 * };
 * ```
 */
export type LifecycleHook = (
  context: { signal: AbortSignal },
) => Promise<LifecycleStop | void>;

/**
 * A JSON answer that reports a failure, whatever its HTTP status: the
 * value at the dotted `path` is one of `values` (ComfyUI wrappers before
 * 2026-05-07 answer a failed job `200 {"status": "failed"}`, later ones
 * 500/502/503 with the same body). Such an answer is relayed unchanged but
 * counts as an error in the ledger and fails its benchmark request.
 */
export interface FailureBody {
  /** Dotted path into the answer, e.g. `status` or `result.state`. */
  path: string;
  /** Values at `path` that mean the request failed. */
  values: (string | number | boolean | null)[];
}

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
  /**
   * A line matching one of these is a fatal error until the worker is
   * first ready (a failed start, reported at once); after that it is
   * logged and counted in `/metrics` and the health probe decides (one bad
   * request's Python traceback must not end a serving worker).
   * @default {[]}
   */
  onStartupError?: LogPattern[];
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
  /**
   * Seconds of estimated queue wait above which requests get 429 (`0`:
   * any wait); `null`: none. @default {30}
   */
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
  /** Builds the client's answer from the model's (or the function's) response. */
  responseGenerator?: ResponseGenerator;
  /**
   * A JSON answer that is a failure whatever its status (read whole,
   * relayed unchanged, counted as an error and as a failed benchmark
   * request).
   */
  failureBody?: FailureBody;
  /**
   * TypeScript only: answer requests with this function, in the worker,
   * instead of forwarding them to the model server.
   */
  remoteFunction?: RemoteFunction;
  /** The startup benchmark; at most one handler has one. */
  benchmark?: BenchmarkConfig;
  /** This route's limits; each unset one is the worker's. */
  timeouts?: TimeoutsConfig;
  /**
   * Makes streamed answers resumable: after the client's connection drops,
   * the model call goes on for this many seconds into a replay buffer, and
   * `POST /resume/<id>` gets the rest. Unset or `null`: off (a client that
   * leaves cancels the model call at once).
   * @default {null}
   */
  resumeSeconds?: number | null;
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

/** Byte limits of the replay buffers of resumable streams. */
export interface ResumeBufferConfig {
  /** Bytes one stream keeps (its last ones). @default {2097152} */
  streamBytes?: number;
  /** Bytes all streams keep together. @default {67108864} */
  totalBytes?: number;
}

/** {@linkcode ResumeBufferConfig} after validation. */
export type ResolvedResumeBufferConfig = Required<ResumeBufferConfig>;

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

/**
 * The generation canary: after `idleSeconds` without a request in flight,
 * the worker sends `payload` (the smallest real request: one token) to
 * `route`'s model URL and expects a well-formed answer within
 * `deadlineSeconds`; `failureThreshold` failures in a row make the worker
 * not ready until one passes.
 */
export interface CanaryConfig {
  /** A handler's route; the canary goes to that handler's model URL. */
  route: string;
  /** The request sent (not counted as client traffic). */
  payload: Payload;
  /**
   * Dotted path (`choices.0`) that must be present in the JSON answer; unset:
   * any 2xx JSON answer passes.
   */
  expectField?: string;
  /** Seconds without a request in flight before a canary; `null`: off. @default {null} */
  idleSeconds?: number | null;
  /** Seconds the answer may take. @default {30} */
  deadlineSeconds?: number;
  /** Failed canaries in a row that make the worker not ready. @default {2} */
  failureThreshold?: number;
}

/** {@linkcode CanaryConfig} after validation. */
export interface ResolvedCanaryConfig extends CanaryConfig {
  /** Seconds without a request in flight before a canary; `null`: off. */
  idleSeconds: number | null;
  /** Seconds the answer may take. */
  deadlineSeconds: number;
  /** Failed canaries in a row that make the worker not ready. */
  failureThreshold: number;
}

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
  /**
   * The supervisord program running the model server (`vllm`, `sglang`,
   * ...): its `exited:` lines in supervisord's own log are startup errors,
   * its `gave up: ... FATAL` line a fatal error.
   */
  supervisorProgram?: string;
  /** The routes served; at least one, each route once. */
  handlers: HandlerConfig[];
  /** Most sessions at once; 0 means unlimited. @default {10} */
  maxSessions?: number;
  /** Limits of every route's model calls. */
  timeouts?: TimeoutsConfig;
  /** Engine metrics to scrape into `/metrics`. */
  engineMetrics?: EngineMetricsConfig;
  /** Another sign of "loaded" besides the `onLoad` line (log modes only). */
  loadProbe?: LoadProbeConfig;
  /**
   * TypeScript only: an async startup step, for a worker with no model
   * log (readiness: when it resolves; error: when it throws).
   */
  lifecycle?: LifecycleHook;
  /** Replay buffers of the handlers with `resumeSeconds`. */
  resumeBuffer?: ResumeBufferConfig;
  /** The generation canary (off unless `idleSeconds` is set). */
  canary?: CanaryConfig;
}

/**
 * URLs that, all answering 2xx in one round of probes, mark the model
 * loaded as an `onLoad` line would: for servers whose older versions print
 * no load line (the Python ComfyUI worker's readiness shim probes ComfyUI's
 * `/system_stats` and the wrapper's `/health` the same way).
 */
export interface LoadProbeConfig {
  /** Paths on the model server (`/health`) or full URLs; at least one. */
  urls: string[];
  /** Seconds between rounds. @default {5} */
  intervalSeconds?: number;
  /** Seconds one probe may take. @default {2} */
  timeoutSeconds?: number;
}

/** {@linkcode LoadProbeConfig} after validation. */
export type ResolvedLoadProbeConfig = Required<LoadProbeConfig>;

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
  /** The load probe, resolved. */
  loadProbe?: ResolvedLoadProbeConfig;
  /** Replay buffer limits, resolved. */
  resumeBuffer: ResolvedResumeBufferConfig;
  /** The generation canary, resolved. */
  canary?: ResolvedCanaryConfig;
}
