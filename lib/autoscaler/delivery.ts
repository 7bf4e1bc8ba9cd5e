/**
 * Delivery of one kind of report to the autoscaler's addresses, with the
 * retry rule and the figures (`stats`) the `/status` page shows.
 *
 * Each try ends one of three ways:
 * - accepted (2xx): its figures are settled (window deltas subtracted,
 *   request_idx acknowledged).
 * - provably not processed (a non-2xx answer, or no connection at all):
 *   nothing is settled; the next try carries the same figures (rebuilt, so
 *   with what arrived since as well).
 * - unknown (no answer within `timeoutMs`, connection lost after sending, a
 *   504/524 gateway timeout): the autoscaler may have processed it. Sending
 *   the figures again could count them twice (the Python worker does:
 *   10 s timeout, then the same body again), so they are settled as if
 *   delivered and never resent: at most once. The try is counted in
 *   `stats.unconfirmed` and logged; the next address, if any, gets a fresh
 *   report with only the figures that came later.
 *
 * The trade-off: a report that was lost without an answer under-counts by
 * exactly its own figures (one window of `new_load`, `cur_perf`, `rej_load`,
 * `additional_disk_usage`, or one batch of request_idx); nothing is ever
 * counted twice.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { delay } from "../std/async.ts";
import { post } from "./wire.ts";

const logger = getLogger(["edgeworker", "reporter"]);

/** Delivery figures of one report kind. */
export interface ReportKindStats {
  /** Reports some address accepted (2xx). */
  successes: number;
  /** Reports no address accepted after every try. */
  failures: number;
  /**
   * Tries that may have reached the autoscaler but got no answer (timeout,
   * connection lost, 504/524): their figures count as delivered, unresent.
   */
  unconfirmed: number;
  /** HTTP tries, successful or not. */
  attempts: number;
  /** Unix ms of the last accepted report. */
  lastSuccessAt?: number;
  /** Last failure cause (`HTTP 503`, a network error, a timeout). */
  lastError?: string;
}

/** One try's body and what to settle once it is (or may be) delivered. */
export interface Report {
  /** JSON body. */
  body: string;
  /** The figures it carries, for logs (`new_load 12.0`, `3 request_idx`). */
  what: string;
  /** Marks its figures as delivered (subtract the window, acknowledge). */
  settle(): void;
}

/** How a round of tries ended; `unconfirmed` counts as delivered. */
export type Delivery = "delivered" | "unconfirmed" | "failed" | "aborted";

/** Options of {@linkcode Courier}. */
export interface CourierOptions {
  /** Names the kind in logs (`status`, `delete`). */
  kind: string;
  /** Path on every address (`/worker_status/`). */
  path: string;
  /** Tries per address. */
  attempts: number;
  /** Pause between tries of one address. */
  retryDelayMs: number;
  /** Longest wait for the answer to one try. */
  timeoutMs: number;
  /** Ends every try and pause. */
  signal: AbortSignal;
}

/**
 * Posts reports of one kind, in address order, and keeps their figures.
 *
 * @example
 * ```ts
 * import { Courier } from "./delivery.ts";
 * const courier = new Courier({
 *   kind: "status", path: "/worker_status/", attempts: 1, retryDelayMs: 0,
 *   timeoutMs: 1000, signal: AbortSignal.abort(),
 * });
 * const result = await courier.deliver(["http://127.0.0.1:9"], () => undefined);
 * console.log(result); // "aborted"
 * ```
 */
export class Courier {
  #o: CourierOptions;
  #stats: ReportKindStats = {
    successes: 0,
    failures: 0,
    unconfirmed: 0,
    attempts: 0,
  };
  /** A failure streak is on: warned once, not again until a success. */
  #failing = false;
  /** An unconfirmed streak is on: warned once. */
  #unsure = false;

  /** Creates a courier; it sends nothing until {@linkcode deliver}. */
  constructor(options: CourierOptions) {
    this.#o = options;
  }

  /** Delivery figures (a copy). */
  get stats(): ReportKindStats {
    return { ...this.#stats };
  }

  /**
   * Tries each address in order, `attempts` times each, building the body
   * anew for every try (`next`; `undefined` when nothing is left). Retries
   * only what was provably not processed; after an unknown outcome it
   * settles that body and moves to the next address.
   */
  async deliver(
    addrs: string[],
    next: () => Promise<Report | undefined> | Report | undefined,
  ): Promise<Delivery> {
    const { kind, path, attempts, signal } = this.#o;
    const stats = this.#stats;
    let last: Delivery | undefined;
    for (const addr of addrs) {
      for (let attempt = 1; attempt <= attempts; attempt++) {
        if (signal.aborted) return "aborted";
        const report = await next();
        if (report === undefined) return last ?? "delivered";
        stats.attempts++;
        const result = await post(
          `${addr}${path}`,
          report.body,
          signal,
          this.#o.timeoutMs,
        );
        if (result.outcome === "accepted") {
          report.settle();
          this.#delivered();
          return "delivered";
        }
        if (result.outcome === "aborted") return "aborted";
        stats.lastError = result.error;
        if (result.outcome === "unknown") {
          report.settle();
          stats.unconfirmed++;
          this.#unconfirmed(addr, report, result.error);
          last = "unconfirmed";
          break; // never the same figures twice: next address, fresh body
        }
        last = "failed";
        logger.debug(
          "{kind} report to {addr} failed (try {attempt}): {error}",
          { kind, addr, attempt, error: result.error },
        );
        if (attempt < attempts) {
          await delay(this.#o.retryDelayMs, { signal }).catch(() => {});
        }
      }
    }
    if (signal.aborted) return "aborted";
    if (last === "unconfirmed") return last;
    stats.failures++;
    if (!this.#failing) {
      this.#failing = true;
      logger.warn("No autoscaler address accepted the {kind} report: {error}", {
        kind,
        error: stats.lastError,
      });
    }
    return "failed";
  }

  #delivered(): void {
    this.#stats.successes++;
    this.#stats.lastSuccessAt = Date.now();
    if (this.#failing || this.#unsure) {
      logger.info("{kind} reports delivered again", { kind: this.#o.kind });
    }
    this.#failing = false;
    this.#unsure = false;
  }

  /** Warns once per streak; each one is counted in the stats. */
  #unconfirmed(addr: string, report: Report, error: string): void {
    const args = { kind: this.#o.kind, addr, what: report.what, error };
    const text = "{kind} report to {addr} got no answer ({error}); it may " +
      "have arrived, so it is not resent and counts as delivered: {what}";
    if (this.#unsure) logger.debug(text, args);
    else logger.warn(text, args);
    this.#unsure = true;
  }
}
