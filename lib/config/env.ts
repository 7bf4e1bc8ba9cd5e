/**
 * The environment contract: Vast's variables and our `EDGEWORKER_*`
 * settings, typed and validated in one place.
 *
 * Longer than most modules: the whole environment contract is one schema,
 * read once, so every variable is named in one place.
 *
 * @module
 */
import { z } from "zod";
import { formatIssues } from "./validate.ts";

const TRUE_WORDS = ["y", "yes", "t", "true", "on", "1"];
const FALSE_WORDS = ["n", "no", "f", "false", "off", "0"];

/**
 * A flag as Python's `strtobool` reads it (any case, spaces trimmed):
 * `y yes t true on 1` are true, `n no f false off 0` false, anything else
 * `undefined`.
 */
export function strtobool(text: string): boolean | undefined {
  const word = text.trim().toLowerCase();
  if (TRUE_WORDS.includes(word)) return true;
  if (FALSE_WORDS.includes(word)) return false;
  return undefined;
}

// Unset or empty takes the default.
const bool = (fallback: boolean) =>
  z.string().optional().transform((v, ctx) => {
    if (v === undefined || v.trim() === "") return fallback;
    const flag = strtobool(v);
    if (flag !== undefined) return flag;
    ctx.addIssue({
      code: "custom",
      message: `expected true or false, got "${v}"`,
    });
    return z.NEVER;
  });

/** Which message shape the autoscaler signed: url-only (current), all fields (legacy), or either. */
export const SIGNATURE_FORMATS = ["url", "legacy", "any"] as const;

/** One of {@linkcode SIGNATURE_FORMATS} (`EDGEWORKER_SIGNATURE_FORMAT`). */
export type SignatureFormat = typeof SIGNATURE_FORMATS[number];

/** How the startup benchmark runs: `auto` uses the cache when present. */
export const BENCHMARK_MODES = ["auto", "skip", "force"] as const;

/** One of {@linkcode BENCHMARK_MODES} (`EDGEWORKER_BENCHMARK`). */
export type BenchmarkMode = typeof BENCHMARK_MODES[number];

/** `version` the current Python workers send. */
export const DEFAULT_VERSION = "1.1.0";

const port = z.coerce.number().int().min(0).max(65535);
const seconds = z.coerce.number().nonnegative();

/**
 * V8's longest string, 2^29 - 24 units: a body read into one string cannot
 * have more bytes (a longer one fails with "string too long").
 */
export const MAX_STRING_BYTES = 536_870_888;

/**
 * The body limit when `EDGEWORKER_MAX_BODY_BYTES` is unset: 256 MiB holds
 * 192 MiB of media as base64 (Vast sends media inline) and stays at half of
 * {@linkcode MAX_STRING_BYTES}.
 */
export const DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024;

/** Every environment variable the worker reads. */
export const EnvSchema = z.object({
  WORKER_PORT: port.default(3000),
  WORKER_HTTP_PORT: port.optional(),
  REPORT_ADDR: z.string().optional(),
  /** Vast sets exactly "true" for TLS. */
  USE_SSL: z.string().optional().transform((v) => v === "true"),
  UNSECURED: bool(false),
  MASTER_TOKEN: z.string().default(""),
  CONTAINER_ID: z.coerce.number().int().default(0),
  PUBLIC_IPADDR: z.string().optional(),
  MODEL_LOG: z.string().optional(),
  MODEL_SERVER_URL: z.string().optional(),
  MODEL_HEALTH_ENDPOINT: z.string().optional(),
  BACKEND: z.string().optional(),
  EDGEWORKER_HOST: z.string().default("0.0.0.0"),
  EDGEWORKER_SIGNATURE_FORMAT: z.enum(SIGNATURE_FORMATS).default("url"),
  EDGEWORKER_CHECK_URL: bool(false),
  EDGEWORKER_PUBKEY_FILE: z.string().optional(),
  /** Unset: DEFAULT_MAX_BODY_BYTES (256 MiB). */
  EDGEWORKER_MAX_BODY_BYTES: z.coerce.number().int().positive().max(
    MAX_STRING_BYTES,
    `at most ${MAX_STRING_BYTES} (a body is read into one string: V8's longest)`,
  ).optional(),
  /** A new connection's time for its first request's headers. */
  EDGEWORKER_HEADERS_SECONDS: seconds.default(30),
  /** An idle keep-alive connection's life (aiohttp's keepalive_timeout). */
  EDGEWORKER_KEEPALIVE_SECONDS: seconds.default(75),
  /** A request body's time to arrive whole. */
  EDGEWORKER_BODY_SECONDS: seconds.default(300),
  /**
   * An idle pooled connection to the model server is dropped after this:
   * below the servers' own idle close (uvicorn's `timeout_keep_alive` 5 s in
   * vLLM, SGLang and the ComfyUI wrapper; cpp-httplib's 5 s in llama.cpp;
   * gunicorn's 2 s), so no request lands on a connection being closed.
   */
  EDGEWORKER_MODEL_IDLE_SECONDS: z.coerce.number().positive().default(1.5),
  EDGEWORKER_LOG_FROM: z.enum(["start", "end"]).default("start"),
  /** supervisord's own log (base-image `supervisord.conf`), always read from its end. */
  EDGEWORKER_SUPERVISOR_LOG: z.string().default(
    "/var/log/supervisor/supervisord.log",
  ),
  EDGEWORKER_BENCHMARK: z.enum(BENCHMARK_MODES).default("auto"),
  EDGEWORKER_BENCHMARK_FILE: z.string().default(".has_benchmark"),
  EDGEWORKER_DRAIN_SECONDS: seconds.default(30),
  /** Override the config's `timeouts` for every route; 0 turns one off. */
  EDGEWORKER_TIMEOUT_FIRST_BYTE: seconds.optional(),
  EDGEWORKER_TIMEOUT_IDLE: seconds.optional(),
  EDGEWORKER_TIMEOUT_TOTAL: seconds.optional(),
  /** Override the config's `resumeBuffer` limits. */
  EDGEWORKER_RESUME_STREAM_BYTES: z.coerce.number().int().positive()
    .optional(),
  EDGEWORKER_RESUME_TOTAL_BYTES: z.coerce.number().int().positive().optional(),
  /** Generation canary: idle seconds before one (0: off), over the config's. */
  EDGEWORKER_CANARY_IDLE_SECONDS: seconds.optional(),
  /** Seconds a canary's answer may take, over the config's. */
  EDGEWORKER_CANARY_DEADLINE_SECONDS: z.coerce.number().positive().optional(),
  /** Failed canaries in a row that make the worker not ready. */
  EDGEWORKER_CANARY_FAILURES: z.coerce.number().int().positive().optional(),
  /** An answer that relays no byte this long is stalled (0: no detector). */
  EDGEWORKER_STALL_SECONDS: seconds.default(60),
  /** A stalled answer is aborted with a recorded error. */
  EDGEWORKER_STALL_ABORT: bool(false),
  /** Every parallel route's slots: N, or `auto` (over the config's maxConcurrency). */
  EDGEWORKER_MAX_CONCURRENCY: z.union([
    z.literal("auto"),
    z.coerce.number().int().positive(),
  ], { error: 'expected a positive integer or "auto"' }).optional(),
  /** The most slots of an `auto` route (over the config's autoConcurrency.max). */
  EDGEWORKER_AUTO_CONCURRENCY_MAX: z.coerce.number().int().positive()
    .optional(),
  EDGEWORKER_LOG_LEVEL: z.enum(["debug", "info", "warning", "error"]).default(
    "info",
  ),
  EDGEWORKER_LOG_FORMAT: z.enum(["text", "json"]).default("text"),
  EDGEWORKER_VERSION: z.string().default(DEFAULT_VERSION),
  EDGEWORKER_TLS_CERT: z.string().default("/etc/instance.crt"),
  EDGEWORKER_TLS_KEY: z.string().default("/etc/instance.key"),
  EDGEWORKER_UPDATE_FILE: z.string().default("/.force_update"),
  /** `GET /dashboard` (behind `MASTER_TOKEN`); off unless "true". */
  EDGEWORKER_DASHBOARD: bool(false),
  /** Deno's own: set (any value) at start, SIGUSR2 makes it malloc_trim. */
  DENO_USR2_MEMORY_TRIM: z.string().optional(),
});

/** The parsed environment. */
export type WorkerEnv = z.output<typeof EnvSchema> & {
  /** `VAST_TCP_PORT_<WORKER_PORT>`: the public port mapped to ours. */
  publicPort?: number;
};

/** Error listing every bad variable. */
export class EnvError extends Error {
  /** Creates the error from `NAME: problem` lines. */
  constructor(readonly problems: readonly string[]) {
    super(`Invalid environment:\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.name = "EnvError";
  }
}

/**
 * Reads the worker's environment.
 *
 * @throws {EnvError} naming each variable that is set but invalid
 */
export function readEnv(
  vars: Record<string, string | undefined> = Deno.env.toObject(),
): WorkerEnv {
  const result = EnvSchema.safeParse(vars);
  if (!result.success) throw new EnvError(formatIssues(result.error));
  const env: WorkerEnv = result.data;
  const mapped = vars[`VAST_TCP_PORT_${env.WORKER_PORT}`];
  if (mapped !== undefined && /^\d+$/.test(mapped)) {
    env.publicPort = Number(mapped);
  }
  return env;
}

/** The `EDGEWORKER_TIMEOUT_*` overrides that are set (0 means none). */
export function envTimeouts(
  env: WorkerEnv,
): { firstByte?: number | null; idle?: number | null; total?: number | null } {
  const out: {
    firstByte?: number | null;
    idle?: number | null;
    total?: number | null;
  } = {};
  const set = (key: "firstByte" | "idle" | "total", v: number | undefined) => {
    if (v !== undefined) out[key] = v === 0 ? null : v;
  };
  set("firstByte", env.EDGEWORKER_TIMEOUT_FIRST_BYTE);
  set("idle", env.EDGEWORKER_TIMEOUT_IDLE);
  set("total", env.EDGEWORKER_TIMEOUT_TOTAL);
  return out;
}

/** The `EDGEWORKER_RESUME_*_BYTES` overrides that are set. */
export function envResumeBuffer(
  env: WorkerEnv,
): { streamBytes?: number; totalBytes?: number } {
  const out: { streamBytes?: number; totalBytes?: number } = {};
  if (env.EDGEWORKER_RESUME_STREAM_BYTES !== undefined) {
    out.streamBytes = env.EDGEWORKER_RESUME_STREAM_BYTES;
  }
  if (env.EDGEWORKER_RESUME_TOTAL_BYTES !== undefined) {
    out.totalBytes = env.EDGEWORKER_RESUME_TOTAL_BYTES;
  }
  return out;
}

/**
 * A handler's queueing rule with `EDGEWORKER_MAX_CONCURRENCY` and
 * `EDGEWORKER_AUTO_CONCURRENCY_MAX` applied (parallel handlers only; a
 * `max` below the config's `min` or `initial` pulls those down with it).
 */
export function envConcurrency<
  H extends {
    allowParallelRequests: boolean;
    maxConcurrency?: number | "auto";
    autoConcurrency?: { min?: number; max?: number; initial?: number };
  },
>(handler: H, env: WorkerEnv): H {
  if (!handler.allowParallelRequests) return handler;
  const out = { ...handler };
  if (env.EDGEWORKER_MAX_CONCURRENCY !== undefined) {
    out.maxConcurrency = env.EDGEWORKER_MAX_CONCURRENCY;
  }
  const max = env.EDGEWORKER_AUTO_CONCURRENCY_MAX;
  if (out.maxConcurrency === "auto" && max !== undefined) {
    const auto = { ...out.autoConcurrency, max };
    if (auto.min !== undefined) auto.min = Math.min(auto.min, max);
    if (auto.initial !== undefined) auto.initial = Math.min(auto.initial, max);
    out.autoConcurrency = auto;
  }
  return out;
}

/** The stall detector the environment asks for; none with `EDGEWORKER_STALL_SECONDS=0`. */
export function envStallRule(
  env: WorkerEnv,
): { seconds: number; abort: boolean } | undefined {
  const seconds = env.EDGEWORKER_STALL_SECONDS;
  return seconds > 0
    ? { seconds, abort: env.EDGEWORKER_STALL_ABORT }
    : undefined;
}

/** The `EDGEWORKER_CANARY_*` overrides that are set (idle 0 means off). */
export function envCanary(env: WorkerEnv): {
  idleSeconds?: number | null;
  deadlineSeconds?: number;
  failureThreshold?: number;
} {
  const out: {
    idleSeconds?: number | null;
    deadlineSeconds?: number;
    failureThreshold?: number;
  } = {};
  const idle = env.EDGEWORKER_CANARY_IDLE_SECONDS;
  if (idle !== undefined) out.idleSeconds = idle === 0 ? null : idle;
  const deadline = env.EDGEWORKER_CANARY_DEADLINE_SECONDS;
  if (deadline !== undefined) out.deadlineSeconds = deadline;
  const failures = env.EDGEWORKER_CANARY_FAILURES;
  if (failures !== undefined) out.failureThreshold = failures;
  return out;
}

/** `REPORT_ADDR` as a list of base URLs without trailing slashes. */
export function reportAddresses(env: WorkerEnv): string[] {
  return (env.REPORT_ADDR ?? "").split(",").map((a) =>
    a.trim().replace(/\/+$/, "")
  )
    .filter((a) => a !== "");
}

/**
 * The URL the autoscaler and clients reach this worker at, as Python builds
 * it: `http(s)://PUBLIC_IPADDR:VAST_TCP_PORT_<WORKER_PORT>`.
 */
export function publicUrl(env: WorkerEnv, listeningPort?: number): string {
  const scheme = env.USE_SSL ? "https" : "http";
  const host = env.PUBLIC_IPADDR ?? "127.0.0.1";
  const port = env.publicPort ?? listeningPort ?? env.WORKER_PORT;
  return `${scheme}://${host}:${port}`;
}

/** Who this worker is, as every report to the autoscaler says it. */
export interface ReportIdentity {
  /** `int(CONTAINER_ID)`. */
  id: number;
  /** `MASTER_TOKEN`. */
  mtoken: string;
  /** Protocol `version` (`EDGEWORKER_VERSION`); empty means {@linkcode DEFAULT_VERSION}. */
  version: string;
  /** Public URL of the worker (see {@linkcode publicUrl}). */
  url: string;
}

/** The identity reports carry, from the environment. */
export function reportIdentity(
  env: WorkerEnv,
  listeningPort?: number,
): ReportIdentity {
  return {
    id: env.CONTAINER_ID,
    mtoken: env.MASTER_TOKEN,
    version: env.EDGEWORKER_VERSION,
    url: publicUrl(env, listeningPort),
  };
}
