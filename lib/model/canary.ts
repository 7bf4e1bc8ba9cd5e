/**
 * The generation canary: a model server can answer its health URL while
 * generation hangs (a wedged engine loop, a dead GPU worker). After
 * `idleSeconds` with no request in flight, the worker sends its smallest
 * real request (one token) straight to the model server, outside the
 * ledger (it is no client traffic and is never reported), and expects a
 * well-formed answer within `deadlineSeconds`. `failureThreshold` failures
 * in a row degrade the worker (error, reported to the autoscaler) until a
 * canary, or a client request on the canary's route, succeeds again.
 *
 * A client request arriving while a canary runs cancels the canary (it
 * counts neither way), so a canary never shares the engine with traffic.
 * While generation fails, the next canary goes after
 * `min(idleSeconds, 10)` seconds instead of the full idle time.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { envCanary, EnvError, type WorkerEnv } from "../config/env.ts";
import type {
  ResolvedCanaryConfig,
  ResolvedWorkerConfig,
} from "../config/schemas.ts";
import type { Ledger, LedgerEvent } from "../traffic/ledger.ts";
import { readPath } from "../traffic/workload.ts";
import type { HealthLevels } from "./health_levels.ts";
import type { Lifecycle } from "./lifecycle.ts";
import type { ModelClient } from "./model_client.ts";

const log = getLogger(["edgeworker", "canary"]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The name a failing canary degrades the lifecycle under. */
export const CANARY_CHECK = "generation canary";

/** Longest pause between canaries while generation fails, in ms. */
const RETRY_MS = 10_000;

/**
 * The canary in force: the config's (a preset's) with the
 * `EDGEWORKER_CANARY_*` overrides; undefined when there is none.
 *
 * @throws {EnvError} when the environment turns on a canary the config has
 *   no request for
 */
export function resolveCanary(
  config: ResolvedWorkerConfig,
  env: WorkerEnv,
): ResolvedCanaryConfig | undefined {
  const over = envCanary(env);
  if (!config.canary) {
    if (over.idleSeconds) {
      throw new EnvError([
        "EDGEWORKER_CANARY_IDLE_SECONDS: this config has no canary request (set `canary` with a route and payload)",
      ]);
    }
    return undefined;
  }
  return { ...config.canary, ...over };
}

/** How one canary ended. */
export type CanaryResult =
  | { ok: true }
  | { ok: false; reason: string }
  | { skipped: true };

/**
 * POSTs `payload` to `url` through `client` (the pool requests use, so the
 * canary takes their path) and checks the answer: a 2xx with a JSON body
 * (holding `expectField` when given), all within `deadlineMs`. A `cancel`
 * abort is a skip, not a failure.
 */
export async function sendCanary(
  client: ModelClient,
  url: string,
  canary: Pick<ResolvedCanaryConfig, "payload" | "expectField">,
  deadlineMs: number,
  cancel: AbortSignal,
): Promise<CanaryResult> {
  const timeout = AbortSignal.timeout(deadlineMs);
  try {
    const answer = await client.post(
      url,
      encoder.encode(JSON.stringify(canary.payload)),
      "application/json",
      AbortSignal.any([timeout, cancel]),
    );
    const text = decoder.decode(await answer.bytes());
    const status = answer.status;
    if (status < 200 || status > 299) {
      return { ok: false, reason: `HTTP ${status}: ${text.slice(0, 200)}` };
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { ok: false, reason: `not JSON: ${text.slice(0, 200)}` };
    }
    const field = canary.expectField;
    if (field !== undefined && (readPath(body, field) ?? null) === null) {
      return { ok: false, reason: `answer has no ${field}` };
    }
    return { ok: true };
  } catch (e) {
    if (cancel.aborted) return { skipped: true };
    if (timeout.aborted) {
      return { ok: false, reason: `no answer within ${deadlineMs / 1000} s` };
    }
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
}

/** Canary figures for `/status` and `/metrics`. */
export interface CanaryStats {
  idle_seconds: number;
  deadline_seconds: number;
  failure_threshold: number;
  route: string;
  passed: number;
  failed: number;
  /** Cancelled by a client request. */
  skipped: number;
  /** Client answers on the canary's route that counted as a pass. */
  passed_by_traffic: number;
  /** Seconds the last canary took. */
  last_seconds: number | null;
  running: boolean;
}

/** Options of {@linkcode GenerationCanary}. */
export interface GenerationCanaryOptions {
  /** The canary, with `idleSeconds` set. */
  config: ResolvedCanaryConfig & { idleSeconds: number };
  /** The model URL of the canary's route. */
  url: string;
  /** The client requests take to the model server. */
  client: ModelClient;
  ledger: Ledger;
  lifecycle: Lifecycle;
  levels: HealthLevels;
  /** How often idleness is checked, in ms. @default {min(250, idle/4)} */
  tickMs?: number;
}

/** Sends the canary whenever the worker has been idle long enough. */
export class GenerationCanary {
  #o: GenerationCanaryOptions;
  #timer: ReturnType<typeof setInterval> | undefined;
  #stop = new AbortController();
  #running: AbortController | undefined;
  #done: Promise<void> = Promise.resolve();
  // performance.now() of the last activity: a request ending, a canary, ready.
  // (A request is in flight in between: the ledger's count says so.)
  #quietSince = performance.now();
  #failuresInARow = 0;
  #unsubscribe: (() => void)[] = [];
  #stats: CanaryStats;

  /** Creates a stopped canary. */
  constructor(options: GenerationCanaryOptions) {
    this.#o = options;
    const c = options.config;
    this.#stats = {
      idle_seconds: c.idleSeconds,
      deadline_seconds: c.deadlineSeconds,
      failure_threshold: c.failureThreshold,
      route: c.route,
      passed: 0,
      failed: 0,
      skipped: 0,
      passed_by_traffic: 0,
      last_seconds: null,
      running: false,
    };
  }

  /** Figures for `/status` and `/metrics`. */
  get stats(): Readonly<CanaryStats> {
    return { ...this.#stats, running: this.#running !== undefined };
  }

  /** Starts watching for idleness. */
  start(): void {
    if (this.#timer !== undefined) return;
    const idleMs = this.#o.config.idleSeconds * 1000;
    const tick = this.#o.tickMs ?? Math.max(10, Math.min(250, idleMs / 4));
    this.#unsubscribe.push(
      this.#o.ledger.subscribe((e) => this.#onLedger(e)),
      this.#o.lifecycle.subscribe((t) => {
        if (t.to === "ready") this.#quietSince = performance.now();
      }),
    );
    this.#timer = setInterval(() => this.#tick(), tick);
  }

  /** Stops; a canary in flight is cancelled and awaited. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#stop.abort();
    for (const u of this.#unsubscribe) u();
    await this.#done;
  }

  // On the request path: O(1), no clock read but at the end of a request.
  #onLedger(e: LedgerEvent): void {
    if (e.type === "open") {
      this.#running?.abort();
      return;
    }
    // Refusals (401, 429, queue timeouts) never reached the engine.
    if (e.type !== "finish") return;
    this.#quietSince = performance.now();
    const r = e.record;
    if (
      this.#failuresInARow > 0 && r.status === "success" &&
      r.route === this.#o.config.route && r.kind !== "session"
    ) {
      this.#stats.passed_by_traffic++;
      this.#passed("a client request on its route succeeded");
    }
  }

  #eligible(): boolean {
    const life = this.#o.lifecycle;
    return life.ready || life.degradedBy.includes(CANARY_CHECK);
  }

  #tick(): void {
    if (this.#running || !this.#eligible()) return;
    if (this.#o.ledger.inFlightCount > 0) return;
    const idleMs = this.#o.config.idleSeconds * 1000;
    const wait = this.#failuresInARow > 0 ? Math.min(idleMs, RETRY_MS) : idleMs;
    if (performance.now() - this.#quietSince < wait) return;
    this.#done = this.#run();
  }

  async #run(): Promise<void> {
    const running = new AbortController();
    this.#running = running;
    const started = performance.now();
    const { config, url } = this.#o;
    const result = await sendCanary(
      this.#o.client,
      url,
      config,
      config.deadlineSeconds * 1000,
      AbortSignal.any([running.signal, this.#stop.signal]),
    );
    this.#running = undefined;
    this.#quietSince = performance.now();
    if (this.#stop.signal.aborted) return;
    this.#stats.last_seconds = (this.#quietSince - started) / 1000;
    if ("skipped" in result) {
      this.#stats.skipped++;
      log.debug("Generation canary cancelled: a client request arrived");
    } else if (result.ok) {
      this.#stats.passed++;
      this.#passed(`passed in ${this.#stats.last_seconds.toFixed(3)} s`);
    } else {
      this.#stats.failed++;
      this.#failed(result.reason);
    }
  }

  #passed(how: string): void {
    const was = this.#failuresInARow;
    this.#failuresInARow = 0;
    this.#o.levels.generation({ ok: true });
    if (was > 0) {
      log.info("Generation works again ({how})", { how });
      this.#o.lifecycle.restore(CANARY_CHECK);
    } else log.debug("Generation canary {how}", { how });
  }

  #failed(reason: string): void {
    const n = ++this.#failuresInARow;
    const { config, url, lifecycle, levels } = this.#o;
    levels.generation({ ok: false, reason });
    log.warn("Generation canary failed ({n} in a row) at {url}: {reason}", {
      n,
      url,
      reason,
    });
    if (n >= config.failureThreshold) {
      lifecycle.degrade(
        CANARY_CHECK,
        `Generation canary failed ${n} times in a row at ${url}: ${reason}`,
      );
    }
  }
}
