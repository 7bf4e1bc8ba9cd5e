/**
 * Request timeouts without a timer per request: every ticket that has a
 * deadline joins one watch list, swept by a single interval that runs only
 * while the list is not empty. A sweep every `resolutionMs` bounds how late
 * an expiry fires; the request path itself never arms or clears a timer.
 *
 * @module
 */

/** Which limit a request ran into. */
export type TimeoutKind =
  | "queue"
  | "connect"
  | "first_byte"
  | "idle"
  | "total"
  | "stall";

/** The abort reason of a request whose timeout expired. */
export class RequestTimeout extends Error {
  /** The limit that expired. */
  readonly kind: TimeoutKind;
  /** Its length in seconds. */
  readonly seconds: number;

  /** Makes the reason for `kind` after `seconds`. */
  constructor(kind: TimeoutKind, seconds: number) {
    super(`${kind} timeout of ${seconds} s expired`);
    this.name = "TimeoutError";
    this.kind = kind;
    this.seconds = seconds;
  }
}

/** Something with a deadline: asked at each sweep whether it expired. */
export interface Watched {
  /**
   * Called on each sweep with the monotonic time in ms; returns false to
   * leave the watch list (ended or expired).
   */
  check(nowMs: number): boolean;
}

/** Options of {@linkcode Deadlines}. */
export interface DeadlinesOptions {
  /**
   * Sweep interval in ms: an expiry fires at most this late.
   * @default {250}
   */
  resolutionMs?: number;
  /** Monotonic clock in ms, for tests. @default {performance.now} */
  now?: () => number;
}

/**
 * The watch list of every request with a deadline.
 *
 * @example
 * ```ts
 * import { Deadlines } from "./deadlines.ts";
 * const deadlines = new Deadlines({ resolutionMs: 10 });
 * const until = performance.now() + 50;
 * deadlines.watch({ check: (now) => now < until });
 * deadlines.close();
 * ```
 */
export class Deadlines {
  #watched = new Set<Watched>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #resolutionMs: number;
  #now: () => number;

  /** Creates an empty watch list. */
  constructor(options: DeadlinesOptions = {}) {
    this.#resolutionMs = options.resolutionMs ?? 250;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Monotonic time in ms, the clock deadlines are measured on. */
  now(): number {
    return this.#now();
  }

  /** Adds `item` until its `check` returns false or it is removed. */
  watch(item: Watched): void {
    this.#watched.add(item);
    this.#timer ??= setInterval(() => this.#sweep(), this.#resolutionMs);
  }

  /** Removes `item` (it ended). */
  unwatch(item: Watched): void {
    this.#watched.delete(item);
    if (this.#watched.size === 0) this.#stop();
  }

  /** Items on the list. */
  get size(): number {
    return this.#watched.size;
  }

  /** Stops sweeping and forgets every item. */
  close(): void {
    this.#watched.clear();
    this.#stop();
  }

  #sweep(): void {
    const now = this.#now();
    for (const item of this.#watched) {
      let keep = false;
      try {
        keep = item.check(now);
      } finally {
        if (!keep) this.#watched.delete(item);
      }
    }
    if (this.#watched.size === 0) this.#stop();
  }

  #stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
