/**
 * Client configuration and the per-call state (deadline, abort signal,
 * retry budget, backoff) shared by requests and sessions.
 *
 * @module
 */

import { delay } from "../std/async.ts";
import { EdgeworkerError } from "./errors.ts";

/** Options of {@linkcode EdgeworkerClient}. */
export interface EdgeworkerClientOptions {
  /** Autoscaler base URL. Default `"https://run.vast.ai"`. */
  routeUrl?: string;
  /** Endpoint name, as shown in the Vast console. */
  endpoint: string;
  /** The endpoint's API key; sent as Bearer to `/route/` and to workers. */
  apiKey: string;
  /**
   * Overall deadline per call in ms (routing, queueing, retries and the
   * worker's response headers; JSON helpers also include the body).
   * Default 600000 (10 min).
   */
  timeoutMs?: number;
  /** Retries after 429/408/5xx answers or connection errors. Default 5. */
  maxRetries?: number;
  /** Randomized exponential backoff between retries. */
  backoff?: {
    /** First delay in ms (jittered down to half). Default 250. */
    initialMs?: number;
    /** Largest delay in ms; also caps `Retry-After`. Default 5000. */
    maxMs?: number;
  };
  /** Largest delay in ms between `/route/` polls while waiting. Default 5000. */
  routePollMaxMs?: number;
  /**
   * Skip `/route/` and send every request to this worker URL with an
   * unsigned auth_data (`request_idx` 1), like `VAST_DEBUG_WORKER_URL` in
   * Vast's Python client. For local testing with `UNSECURED=true` workers.
   */
  workerUrl?: string;
  /** The `fetch` to use. Default `globalThis.fetch`. */
  fetch?: typeof fetch;
}

/** Per-call options shared by every request method. */
export interface CallOptions {
  /** Aborts the call (and the response body, once returned). */
  signal?: AbortSignal;
  /** Overrides the client's `timeoutMs` for this call. */
  timeoutMs?: number;
}

/** Validated options with defaults applied. */
export interface ResolvedConfig {
  routeUrl: string;
  endpoint: string;
  apiKey: string;
  timeoutMs: number;
  maxRetries: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  routePollMaxMs: number;
  workerUrl: string | undefined;
  fetch: typeof fetch;
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number, got ${value}`);
  }
  return value;
}

/** Validates {@linkcode EdgeworkerClientOptions} and applies defaults. */
export function resolveConfig(
  options: EdgeworkerClientOptions,
): ResolvedConfig {
  const maxRetries = options.maxRetries ?? 5;
  if (!Number.isInteger(maxRetries) || maxRetries < 0) {
    throw new RangeError(
      `maxRetries must be an integer >= 0, got ${maxRetries}`,
    );
  }
  if (!options.workerUrl && !options.endpoint) {
    throw new TypeError("endpoint is required");
  }
  const initial = positive(
    "backoff.initialMs",
    options.backoff?.initialMs ?? 250,
  );
  const max = positive("backoff.maxMs", options.backoff?.maxMs ?? 5000);
  return {
    routeUrl: (options.routeUrl ?? "https://run.vast.ai").replace(/\/+$/, ""),
    endpoint: options.endpoint,
    apiKey: options.apiKey,
    timeoutMs: positive("timeoutMs", options.timeoutMs ?? 600_000),
    maxRetries,
    backoffInitialMs: initial,
    backoffMaxMs: Math.max(initial, max),
    routePollMaxMs: positive("routePollMaxMs", options.routePollMaxMs ?? 5000),
    workerUrl: options.workerUrl?.replace(/\/+$/, ""),
    fetch: options.fetch ?? globalThis.fetch,
  };
}

/** Exponential backoff with "equal jitter": a delay in [cap/2, cap]. */
export function jitter(
  initialMs: number,
  maxMs: number,
  attempt: number,
): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return cap / 2 + Math.random() * (cap / 2);
}

/** Parses `Retry-After` (seconds or an HTTP date) into ms. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const seconds = Number(value.trim());
  if (Number.isFinite(seconds)) {
    return seconds >= 0 ? seconds * 1000 : undefined;
  }
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** What a call is doing, for timeout messages. */
export type CallPhase = "route" | "worker";

/**
 * One client call: owns the deadline timer, the combined abort signal and
 * the retry budget. Always {@linkcode Call.dispose} it.
 */
export class Call {
  /** Aborted by the caller's signal or by the deadline. */
  readonly signal: AbortSignal;
  /** What the call is waiting for. */
  phase: CallPhase = "route";
  /** The worker being called, for messages. */
  workerUrl = "";
  /** The `status` of the last "waiting" `/route/` answer, for messages. */
  routeStatus = "";
  /** Retries used so far. */
  retries = 0;
  #cfg: ResolvedConfig;
  #timeoutMs: number;
  #deadlineAt: number;
  #deadline = new AbortController();
  #user: AbortSignal | undefined;
  #timer: ReturnType<typeof setTimeout>;

  constructor(cfg: ResolvedConfig, options: CallOptions = {}) {
    this.#cfg = cfg;
    this.#timeoutMs = positive("timeoutMs", options.timeoutMs ?? cfg.timeoutMs);
    this.#deadlineAt = Date.now() + this.#timeoutMs;
    this.#user = options.signal;
    this.#timer = setTimeout(
      () =>
        this.#deadline.abort(
          new DOMException("Deadline exceeded", "TimeoutError"),
        ),
      this.#timeoutMs,
    );
    this.signal = this.#user
      ? AbortSignal.any([this.#user, this.#deadline.signal])
      : this.#deadline.signal;
  }

  /** Milliseconds left before the deadline. */
  remainingMs(): number {
    return this.#deadlineAt - Date.now();
  }

  /**
   * Maps an error caught during the call: the caller's abort reason if the
   * caller aborted, a timeout {@linkcode EdgeworkerError} if the deadline
   * passed, otherwise the error itself.
   */
  translate(err: unknown): unknown {
    if (this.#user?.aborted) return this.#user.reason;
    if (this.#deadline.signal.aborted && !(err instanceof EdgeworkerError)) {
      return this.timeoutError();
    }
    return err;
  }

  /** The error for a passed deadline, worded for the current phase. */
  timeoutError(): EdgeworkerError {
    const after = `Timed out after ${seconds(this.#timeoutMs)}`;
    const ep = `endpoint "${this.#cfg.endpoint}"`;
    const message = this.phase === "route"
      ? `${after} waiting for a ready worker for ${ep}${
        this.routeStatus ? ` (last /route/ status: ${this.routeStatus})` : ""
      }`
      : `${after} waiting for a response from worker ${this.workerUrl} (${ep})`;
    return new EdgeworkerError(message, { code: "timeout" });
  }

  /**
   * Takes one retry from the budget if one is left and its delay ends before
   * the deadline; returns that delay, or `undefined` when the caller must
   * give up.
   */
  nextRetry(retryAfterMs?: number): number | undefined {
    if (this.retries >= this.#cfg.maxRetries) return undefined;
    const delay = retryAfterMs !== undefined
      ? Math.min(retryAfterMs, this.#cfg.backoffMaxMs)
      : jitter(
        this.#cfg.backoffInitialMs,
        this.#cfg.backoffMaxMs,
        this.retries,
      );
    if (delay >= this.remainingMs()) return undefined;
    this.retries++;
    return delay;
  }

  /** Waits `ms`, rejecting early if the call is aborted. */
  sleep(ms: number): Promise<void> {
    return delay(ms, { signal: this.signal });
  }

  /** Clears the deadline timer; the caller's signal stays in effect. */
  dispose(): void {
    clearTimeout(this.#timer);
  }
}

/**
 * Runs `fn` inside a {@linkcode Call}, translating aborts and always
 * disposing of the call.
 */
export async function runCall<T>(
  cfg: ResolvedConfig,
  options: CallOptions,
  fn: (call: Call) => Promise<T>,
): Promise<T> {
  options.signal?.throwIfAborted();
  const call = new Call(cfg, options);
  try {
    return await fn(call);
  } catch (err) {
    throw call.translate(err);
  } finally {
    call.dispose();
  }
}
