/**
 * Worker configuration: one Zod schema per concept. The same schemas
 * validate a TypeScript config (custom worker) and a YAML file
 * (`edgeworker run --config worker.yaml`). The types are plain TypeScript
 * in `types.ts` (Zod stays out of the public API);
 * `tests/config_contract.ts` fails to compile when a schema and its type
 * drift apart.
 *
 * Longer than most modules: every Zod schema of the config in one place.
 *
 * @module
 */
import { z } from "zod";
import type {
  LifecycleHook,
  LogPattern,
  Payload,
  RemoteFunction,
  RequestParser,
  ResponseGenerator,
  WorkloadCalculator,
} from "./types.ts";

export type * from "./types.ts";

/** How readiness is learned: the model server's log, its health URL, both, or neither. */
export const READINESS_MODES = ["logs", "healthcheck", "both", "none"] as const;

/** One of {@linkcode READINESS_MODES}. */
export type ReadinessMode = typeof READINESS_MODES[number];

/** What a readiness mode waits for: a load line in the log, a 200 from the health URL. */
export function readinessWaitsFor(
  mode: ReadinessMode | undefined,
): { log: boolean; health: boolean } {
  return {
    log: mode === "logs" || mode === "both",
    health: mode === "healthcheck" || mode === "both",
  };
}

/** A function given in a TypeScript config (not representable in YAML). */
function fn<T extends (...args: never[]) => unknown>(what: string) {
  return z.custom<T>((v) => typeof v === "function", {
    error: `expected ${what} function`,
  });
}

/** A log pattern: a substring, or `{ regex: "..." }`. */
export const LogPatternSchema: z.ZodType<LogPattern, LogPattern> = z.union([
  z.string().min(1, { error: "expected a non-empty pattern" }),
  z.instanceof(RegExp),
  z.strictObject({
    regex: z.string().refine(isValidRegex, { error: "invalid regex" }),
  }),
]);

function isValidRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}

/** Log lines that mark the model loaded, broken, or worth logging. */
export const LogActionConfigSchema = z.strictObject({
  onLoad: z.array(LogPatternSchema).default([]),
  onError: z.array(LogPatternSchema).default([]),
  onStartupError: z.array(LogPatternSchema).default([]),
  onInfo: z.array(LogPatternSchema).default([]),
});

/** Declarative workload: constant, a number at a JSON path, or tokens. */
export const DeclarativeWorkloadSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("constant"),
    value: z.number().nonnegative(),
  }),
  z.strictObject({
    kind: z.literal("field"),
    /** Dotted path, e.g. `parameters.max_new_tokens`. */
    path: z.string().min(1),
    /** Used when the field is absent. */
    default: z.number().nonnegative().default(0),
  }),
  z.strictObject({
    kind: z.literal("tokens"),
    /** Dotted paths of text (or arrays of text / chat messages). */
    fields: z.array(z.string().min(1)).min(1),
    /** Dotted paths of requested output tokens; the first present wins. */
    outputFields: z.array(z.string().min(1)).default([]),
    /** Output tokens assumed when no output field is present. */
    defaultOutput: z.number().nonnegative().default(0),
    /** Characters per token of the estimate. */
    charsPerToken: z.number().positive().default(4),
  }),
]);

/** How the benchmark measures throughput (`max_perf`). */
export const BenchmarkConfigSchema = z.strictObject({
  /** TypeScript only: returns one benchmark payload per call. */
  generator: fn<() => Payload>("a payload generator").optional(),
  /** Payloads picked at random per request. */
  dataset: z.array(z.record(z.string(), z.unknown())).min(1).optional(),
  runs: z.int().positive().default(3),
  concurrency: z.int().positive().default(10),
  warmup: z.boolean().default(true),
}).refine((b) => b.generator !== undefined || b.dataset !== undefined, {
  error: "expected a generator or a dataset",
});

const seconds = z.number().positive().nullable();

/**
 * Limits on one model call, in seconds; `null` turns one off. Each expiry
 * aborts the model call, answers 504 naming the limit (or ends a stream
 * already under way) and records the request as an error.
 */
export const TimeoutsConfigSchema = z.strictObject({
  /** From sending the request until the model's answer starts. */
  firstByte: seconds.optional(),
  /** Without a byte from the model once its answer started. */
  idle: seconds.optional(),
  /** From sending the request until its answer ended. */
  total: seconds.optional(),
});

/**
 * Defaults of {@linkcode TimeoutsConfigSchema}: generous enough for a long
 * non-streamed generation (a video job), short enough that a model that
 * never answers frees its slot; no total limit, as the Python worker has.
 */
export const DEFAULT_TIMEOUTS = Object.freeze({
  firstByte: 1800,
  idle: 600,
  total: null,
});

/** A JSON answer that reports a failure (see `FailureBody`). */
export const FailureBodySchema = z.strictObject({
  path: z.string().min(1),
  values: z.array(z.union([z.string(), z.number(), z.boolean(), z.null()]))
    .min(1),
});

/** Bounds of `maxConcurrency: "auto"` (see `lib/traffic/concurrency_limit.ts`). */
export const AutoConcurrencyConfigSchema = z.strictObject({
  /** Fewest slots. */
  min: z.int().positive().default(1),
  /** Most slots; the count never exceeds it. */
  max: z.int().positive().default(128),
  /** Slots at start; default min(max, max(min, 8)). */
  initial: z.int().positive().optional(),
  /** First byte allowed over the unloaded one, as a factor. */
  tolerance: z.number().gt(1).default(1.5),
});

/** One route of the worker, forwarded to the same path on the model server. */
export const HandlerConfigSchema = z.strictObject({
  route: z.string().startsWith("/", {
    error: 'expected string starting with "/"',
  }),
  /** Path on the model server; defaults to `route`. */
  upstreamRoute: z.string().startsWith("/", {
    error: 'expected string starting with "/"',
  }).optional(),
  /** `false`: strict FIFO, one at a time across all such handlers. */
  allowParallelRequests: z.boolean().default(false),
  /** Seconds of estimated queue wait above which requests get 429 (0: any wait); null: none. */
  maxQueueTime: z.number().nonnegative().nullable().default(30),
  /** Parallel handlers: at most this many at once, FIFO beyond; "auto": follows the engine. */
  maxConcurrency: z.union([z.int().positive(), z.literal("auto")]).optional(),
  /** Bounds of `maxConcurrency: "auto"`. */
  autoConcurrency: AutoConcurrencyConfigSchema.optional(),
  workload: z.union([
    fn<WorkloadCalculator>("a workload"),
    DeclarativeWorkloadSchema,
  ]).default({ kind: "constant", value: 100 }),
  /** YAML form of the common request parser: forward `payload.input` if set. */
  unwrapInput: z.boolean().default(false),
  requestParser: fn<RequestParser>("a request parser").optional(),
  responseGenerator: fn<ResponseGenerator>("a response generator").optional(),
  /** A JSON answer that counts as a failure, whatever its status. */
  failureBody: FailureBodySchema.optional(),
  /** TypeScript only: served by the worker itself. */
  remoteFunction: fn<RemoteFunction>("a remote").optional(),
  benchmark: BenchmarkConfigSchema.optional(),
  /** This route's limits; each unset one is the worker's. */
  timeouts: TimeoutsConfigSchema.optional(),
  /** Seconds a streamed answer waits for its client to resume; unset or null: off. */
  resumeSeconds: z.number().positive().nullable().optional(),
});

/**
 * Defaults of {@linkcode ResumeBufferConfigSchema}: 2 MiB per stream (a
 * long chat answer with per-token SSE events), 64 MiB in all.
 */
export const DEFAULT_RESUME_BUFFER = Object.freeze({
  streamBytes: 2 * 1024 * 1024,
  totalBytes: 64 * 1024 * 1024,
});

/** Byte limits of the replay buffers of resumable streams. */
export const ResumeBufferConfigSchema = z.strictObject({
  streamBytes: z.int().positive().default(DEFAULT_RESUME_BUFFER.streamBytes),
  totalBytes: z.int().positive().default(DEFAULT_RESUME_BUFFER.totalBytes),
}).refine((b) => b.streamBytes <= b.totalBytes, {
  error: "expected streamBytes <= totalBytes",
  path: ["streamBytes"],
});

/** Healthcheck probing of the model server. */
export const HealthcheckConfigSchema = z.strictObject({
  intervalSeconds: z.number().positive().default(10),
  timeoutSeconds: z.number().positive().default(10),
  failureThreshold: z.int().positive().default(3),
});

/** Engine metrics scraped from the model server (`/metrics`). */
export const EngineMetricsConfigSchema = z.strictObject({
  kind: z.enum(["vllm", "sglang", "tgi"]),
  path: z.string().startsWith("/").default("/metrics"),
  intervalSeconds: z.number().positive().default(5),
});

/** URLs that, all answering 2xx, mark the model loaded (see `LoadProbeConfig`). */
export const LoadProbeConfigSchema = z.strictObject({
  urls: z.array(z.string().min(1)).min(1),
  intervalSeconds: z.number().positive().default(5),
  timeoutSeconds: z.number().positive().default(2),
});

/** The generation canary (see {@linkcode CanaryConfig}). */
export const CanaryConfigSchema = z.strictObject({
  route: z.string().startsWith("/", {
    error: 'expected string starting with "/"',
  }),
  payload: z.record(z.string(), z.unknown()),
  expectField: z.string().min(1).optional(),
  idleSeconds: z.number().positive().nullable().default(null),
  deadlineSeconds: z.number().positive().default(30),
  failureThreshold: z.int().positive().default(2),
});

/** The whole worker. */
export const WorkerConfigSchema = z.strictObject({
  /** Base URL of the model server, e.g. `http://127.0.0.1:18000`. */
  modelServerUrl: z.url({
    protocol: /^https?$/,
    error: "expected http(s) URL",
  }),
  /** Log file of the model server to tail for load and error lines. */
  modelLogFile: z.string().min(1).optional(),
  /** Health path (`/health`) or full URL of the model server. */
  modelHealthUrl: z.string().min(1).optional(),
  /** How readiness is learned; defaults from what is configured. */
  readiness: z.enum(READINESS_MODES).optional(),
  /** Seconds to wait for readiness before reporting an error. */
  readinessTimeout: z.number().positive().nullable().optional(),
  healthcheck: HealthcheckConfigSchema.default({
    intervalSeconds: 10,
    timeoutSeconds: 10,
    failureThreshold: 3,
  }),
  logActions: LogActionConfigSchema.default({
    onLoad: [],
    onError: [],
    onStartupError: [],
    onInfo: [],
  }),
  /** supervisord program of the model server, for supervisord's log. */
  supervisorProgram: z.string().regex(/^[^\s:]+$/, {
    error: "expected a supervisord program name",
  }).optional(),
  handlers: z.array(HandlerConfigSchema).min(1, {
    error: "expected at least one handler",
  }),
  /** Most sessions at once; 0 means unlimited. */
  maxSessions: z.int().nonnegative().default(10),
  /** Limits of every route's model calls (see {@linkcode DEFAULT_TIMEOUTS}). */
  timeouts: TimeoutsConfigSchema.default({}),
  engineMetrics: EngineMetricsConfigSchema.optional(),
  loadProbe: LoadProbeConfigSchema.optional(),
  /** TypeScript only: an async startup step instead of a model log. */
  lifecycle: fn<LifecycleHook>("a lifecycle").optional(),
  /** Replay buffers of the handlers with `resumeSeconds`. */
  resumeBuffer: ResumeBufferConfigSchema.default({ ...DEFAULT_RESUME_BUFFER }),
  canary: CanaryConfigSchema.optional(),
}).superRefine((cfg, ctx) => {
  const seen = new Set<string>();
  cfg.handlers.forEach((h, i) => {
    if (seen.has(h.route)) {
      ctx.addIssue({
        code: "custom",
        path: ["handlers", i, "route"],
        message: `duplicate route "${h.route}"`,
      });
    }
    seen.add(h.route);
    checkAutoConcurrency(h, i, ctx);
  });
  const withBenchmark = cfg.handlers.filter((h) => h.benchmark).length;
  if (withBenchmark > 1) {
    ctx.addIssue({
      code: "custom",
      path: ["handlers"],
      message: "expected at most one handler with a benchmark",
    });
  }
  if (cfg.canary && !seen.has(cfg.canary.route)) {
    ctx.addIssue({
      code: "custom",
      path: ["canary", "route"],
      message: `no handler has route "${cfg.canary.route}"`,
    });
  }
  const readiness = cfg.readiness;
  const waits = readinessWaitsFor(readiness);
  if (waits.log && !cfg.modelLogFile) {
    ctx.addIssue({
      code: "custom",
      path: ["modelLogFile"],
      message: `required when readiness is "${readiness}"`,
    });
  }
  if (waits.health && !cfg.modelHealthUrl) {
    ctx.addIssue({
      code: "custom",
      path: ["modelHealthUrl"],
      message: `required when readiness is "${readiness}"`,
    });
  }
});

/** `maxConcurrency: "auto"` and its bounds, checked together. */
function checkAutoConcurrency(
  h: z.output<typeof HandlerConfigSchema>,
  i: number,
  ctx: z.RefinementCtx,
): void {
  const issue = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: "custom", path: ["handlers", i, ...path], message });
  if (h.maxConcurrency === "auto" && !h.allowParallelRequests) {
    issue(["maxConcurrency"], '"auto" needs allowParallelRequests: true');
  }
  const auto = h.autoConcurrency;
  if (!auto) return;
  if (h.maxConcurrency !== "auto") {
    issue(["autoConcurrency"], 'only with maxConcurrency: "auto"');
  }
  if (auto.max < auto.min) {
    issue(["autoConcurrency", "max"], `expected at least min (${auto.min})`);
  }
  if (
    auto.initial !== undefined &&
    (auto.initial < auto.min || auto.initial > auto.max)
  ) {
    issue(
      ["autoConcurrency", "initial"],
      `expected between min (${auto.min}) and max (${auto.max})`,
    );
  }
}
