/**
 * Admission and queueing: the queue budget that answers 429, and the FIFO
 * slots that order requests to a model server that cannot take them all
 * (a fixed count, or one that follows the engine: {@linkcode ConcurrencyLimit}).
 *
 * @module
 */
import {
  ConcurrencyLimit,
  type ConcurrencyLimitOptions,
} from "./concurrency_limit.ts";

/** Releases a slot taken with {@linkcode SlotQueue.acquire}. */
export type Release = () => void;

interface Waiter {
  resolve: (release: Release) => void;
  reject: (reason: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * N slots, first come first served beyond them. A waiter whose signal
 * aborts leaves the line at once, so a client that goes away frees its
 * place without delaying anyone.
 *
 * @example One at a time
 * ```ts
 * import { SlotQueue } from "./admission.ts";
 * const fifo = new SlotQueue(1);
 * const release = await fifo.acquire();
 * release();
 * ```
 */
export class SlotQueue {
  #capacity: number;
  #active = 0;
  #waiters: Waiter[] = [];
  #limit: ConcurrencyLimit | undefined;

  /**
   * Creates a queue with `capacity` slots, or with as many as `limit`
   * gives and follows (adaptive).
   */
  constructor(capacity: number | ConcurrencyLimit) {
    if (capacity instanceof ConcurrencyLimit) {
      this.#limit = capacity;
      capacity = capacity.slots;
    }
    if (!(capacity >= 1)) {
      throw new RangeError(`Slot capacity must be at least 1: got ${capacity}`);
    }
    this.#capacity = capacity;
  }

  /** The adaptive limit the slot count follows, if any. */
  get limit(): ConcurrencyLimit | undefined {
    return this.#limit;
  }

  /**
   * An answer's time to first byte (ms) and the slots in use when it was
   * sent: the adaptive limit learns from it. No-op for a fixed count.
   */
  observe(firstByteMs: number, inFlightAtSend: number): void {
    if (this.#limit) {
      this.#resize(this.#limit.sample(firstByteMs, inFlightAtSend));
    }
  }

  /** The model answered "overloaded" (429/503) or missed its first byte. */
  overloaded(): void {
    if (this.#limit) this.#resize(this.#limit.drop());
  }

  /** The engine's own running and waiting counts (a metrics scrape). */
  engine(running: number | undefined, waiting: number | undefined): void {
    if (this.#limit) this.#resize(this.#limit.engine(running, waiting));
  }

  // Fewer slots take effect as requests end (none is stopped); more at once.
  #resize(capacity: number): void {
    if (capacity === this.#capacity) return;
    this.#capacity = capacity;
    this.#handOver();
  }

  /** Requests holding a slot. */
  get active(): number {
    return this.#active;
  }

  /** Requests waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Slots of this queue. */
  get capacity(): number {
    return this.#capacity;
  }

  /**
   * Waits for a slot; resolves with its release function (idempotent).
   * Rejects with the signal's reason if it aborts while waiting.
   */
  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#active < this.#capacity && this.#waiters.length === 0) {
      this.#active++;
      return Promise.resolve(this.#releaser());
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      if (signal) {
        waiter.signal = signal;
        waiter.onAbort = () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.#waiters.push(waiter);
    });
  }

  #releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active--;
      this.#handOver();
    };
  }

  #handOver(): void {
    while (this.#active < this.#capacity && this.#waiters.length > 0) {
      const next = this.#waiters.shift()!;
      if (next.signal && next.onAbort) {
        next.signal.removeEventListener("abort", next.onAbort);
      }
      this.#active++;
      next.resolve(this.#releaser());
    }
  }
}

/** Outcome of the queue-budget check. */
export type BudgetDecision =
  | { admit: true; waitSeconds: number }
  | { admit: false; waitSeconds: number; retryAfterSeconds: number };

/**
 * The 429 rule of the Python worker: estimated wait = workload already in
 * flight / throughput; above `maxQueueTime` the request is refused.
 * Unknown throughput (no benchmark yet) admits: the autoscaler does not
 * route to a worker that is not ready, and refusing would only hide the
 * model server's own answer during local testing.
 */
export function checkBudget(
  queueWorkload: number,
  options: { throughput: number | undefined; maxQueueTime: number | null },
): BudgetDecision {
  const { throughput, maxQueueTime } = options;
  if (!throughput || throughput <= 0 || queueWorkload <= 0) {
    return { admit: true, waitSeconds: 0 };
  }
  const waitSeconds = queueWorkload / throughput;
  if (maxQueueTime === null || waitSeconds <= maxQueueTime) {
    return { admit: true, waitSeconds };
  }
  // Seconds until enough of the queue drains for this request to fit.
  const retryAfterSeconds = Math.max(1, Math.ceil(waitSeconds - maxQueueTime));
  return { admit: false, waitSeconds, retryAfterSeconds };
}

/** Settings of an adaptive slot count when the config gives none. */
export const AUTO_CONCURRENCY_DEFAULTS: Readonly<
  Required<Omit<ConcurrencyLimitOptions, "initial" | "probeEvery">>
> = Object.freeze({ min: 1, max: 128, tolerance: 1.5 });

/** A handler's queueing rule, as the config gives it. */
export interface QueueRule {
  allowParallelRequests: boolean;
  /** N slots, or `"auto"`: a count that follows the engine. */
  maxConcurrency?: number | "auto";
  /** Bounds of the `"auto"` count. */
  autoConcurrency?: Partial<ConcurrencyLimitOptions>;
}

/**
 * Picks the queue of each handler: one FIFO shared by every non-parallel
 * handler (as in Python), an N-slot queue per handler with
 * `maxConcurrency` (adaptive with `"auto"`), none for unbounded parallel
 * handlers.
 */
export class QueuePlan {
  #fifo = new SlotQueue(1);
  #byRoute = new Map<string, SlotQueue | null>();

  /** Registers a handler's queueing rule. */
  add(route: string, options: QueueRule): void {
    let queue: SlotQueue | null = null;
    if (!options.allowParallelRequests) queue = this.#fifo;
    else if (options.maxConcurrency === "auto") {
      queue = new SlotQueue(
        new ConcurrencyLimit({
          ...AUTO_CONCURRENCY_DEFAULTS,
          ...options.autoConcurrency,
        }),
      );
    } else if (options.maxConcurrency) {
      queue = new SlotQueue(options.maxConcurrency);
    }
    this.#byRoute.set(route, queue);
  }

  /** The queue of a route, or null when it runs at once. */
  queueOf(route: string): SlotQueue | null {
    return this.#byRoute.get(route) ?? null;
  }

  /** Each route with a queue, and its queue (the FIFO under each of its routes). */
  *queues(): IterableIterator<[string, SlotQueue]> {
    for (const [route, q] of this.#byRoute) if (q) yield [route, q];
  }

  /** Passes the engine's running and waiting counts to every adaptive queue. */
  engine(running: number | undefined, waiting: number | undefined): void {
    for (const q of this.#byRoute.values()) q?.engine(running, waiting);
  }

  /** Requests waiting for a slot, all queues together. */
  get waiting(): number {
    let n = 0;
    for (const q of new Set(this.#byRoute.values())) n += q?.waiting ?? 0;
    return n;
  }
}
