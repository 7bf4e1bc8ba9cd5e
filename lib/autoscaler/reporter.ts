/**
 * Reporting to the Vast autoscaler: `/worker_status/` within one tick of any
 * ledger change (else a heartbeat), `/delete_requests/` for finished
 * requests, and a beacon when the worker cannot even start.
 *
 * Everything runs in background loops; the request path only flips a flag
 * (a ledger listener). At most one report of each kind is in flight, so
 * reports arrive in order and a slow autoscaler gets no pile of requests;
 * what happens meanwhile waits in the ledger (a fixed-size window of sums
 * and the finished records, capped by the ledger's `maxFinished`).
 *
 * Delivery is at most once (see `delivery.ts`): a try that may have
 * arrived is never resent. `timeoutMs` defaults to a generous 60 s so that a
 * slow but working autoscaler answers and nothing is unknown; while it is
 * slow, new changes wait for its answer (one in flight) instead of within a
 * tick.
 *
 * @module
 */

import type { ReportIdentity } from "../config/env.ts";
import type { Ledger } from "../traffic/ledger.ts";
import { diskUsedGb } from "./disk_usage.ts";
import { Courier, type Report, type ReportKindStats } from "./delivery.ts";
import {
  buildWorkerStatus,
  cleanAddrs,
  deleteAddresses,
  encodeDeleteRequests,
  encodeWorkerStatus,
  type WorkerStatus,
} from "./wire.ts";

/** Worker state read at every report. */
export interface ReporterState {
  /** Seconds from start to "model loaded"; 0 before. */
  loadtime: number;
  /** Sticky error; "" when healthy. */
  errorMsg: string;
  /** Benchmark throughput (`max_perf`). */
  maxPerf: number;
}

/** Options of {@linkcode Reporter}. */
export interface ReporterOptions {
  /** `REPORT_ADDR` split on ","; tried in order. */
  reportAddrs: string[];
  /** Source of every figure. */
  ledger: Ledger;
  /** Who reports. */
  identity: ReportIdentity;
  /** Read at every status report. */
  state: () => ReporterState;
  /** GB used on "/"; defaults to `df`. Non-finite means unknown. */
  diskUsageGb?: () => Promise<number> | number;
  /** Check for changes this often. @default {1000} */
  tickMs?: number;
  /** Report this long after the last accepted one, changes or not. @default {10000} */
  heartbeatMs?: number;
  /** Tries per address. @default {3} */
  attempts?: number;
  /** Pause between tries of one address. @default {2000} */
  retryDelayMs?: number;
  /**
   * Longest wait for the answer to one try. A try without an answer by
   * then may still have been processed: it counts as delivered and is not
   * retried (see the module note). @default {60000}
   */
  timeoutMs?: number;
  /** Most records per `/delete_requests/` post. @default {1000} */
  deleteBatchSize?: number;
}

/** Delivery figures by kind. */
export interface ReporterStats {
  /** `/worker_status/`. */
  status: ReportKindStats;
  /** `/delete_requests/`. */
  delete: ReportKindStats;
}

/**
 * Sends `/worker_status/` and `/delete_requests/` in the background.
 *
 * @example
 * ```ts
 * import { Ledger } from "../traffic/ledger.ts";
 * import { Reporter } from "./reporter.ts";
 * const reporter = new Reporter({
 *   reportAddrs: ["https://run.vast.ai"], ledger: new Ledger(),
 *   identity: { id: 1, mtoken: "t", version: "1.1.0", url: "https://1.2.3.4:3000" },
 *   state: () => ({ loadtime: 0, errorMsg: "", maxPerf: 0 }),
 * });
 * reporter.start();
 * await reporter.flush();
 * await reporter.close();
 * ```
 */
export class Reporter {
  #o: Required<Omit<ReporterOptions, "diskUsageGb">>;
  #disk: () => Promise<number> | number;
  #diskBase: Promise<number> | number | undefined;
  #abort = new AbortController();
  #timer: ReturnType<typeof setInterval> | undefined;
  #unsubscribe: (() => void) | undefined;
  #dirty = false;
  #urgent = false;
  #lastOkAt = -Infinity;
  #statusBusy: Promise<void> | undefined;
  #deleteBusy: Promise<void> | undefined;
  #status: Courier;
  #delete: Courier;
  #lastStatus: WorkerStatus | undefined;

  /** Creates a stopped reporter. */
  constructor(options: ReporterOptions) {
    this.#o = {
      reportAddrs: cleanAddrs(options.reportAddrs),
      ledger: options.ledger,
      identity: options.identity,
      state: options.state,
      tickMs: options.tickMs ?? 1000,
      heartbeatMs: options.heartbeatMs ?? 10_000,
      attempts: Math.max(1, options.attempts ?? 3),
      retryDelayMs: options.retryDelayMs ?? 2000,
      timeoutMs: options.timeoutMs ?? 60_000,
      deleteBatchSize: Math.max(1, options.deleteBatchSize ?? 1000),
    };
    this.#disk = options.diskUsageGb ?? (() => diskUsedGb("/"));
    const courier = (kind: string, path: string) =>
      new Courier({
        kind,
        path,
        attempts: this.#o.attempts,
        retryDelayMs: this.#o.retryDelayMs,
        timeoutMs: this.#o.timeoutMs,
        signal: this.#abort.signal,
      });
    this.#status = courier("status", "/worker_status/");
    this.#delete = courier("delete", "/delete_requests/");
  }

  /** Starts the loops and sends a first status at once. */
  start(): void {
    if (this.#timer !== undefined || this.#abort.signal.aborted) return;
    this.#diskBase = this.#measureDisk();
    this.#unsubscribe = this.#o.ledger.subscribe(() => this.#dirty = true);
    this.#timer = setInterval(() => this.#tick(), this.#o.tickMs);
    this.notify();
  }

  /** Sends a status now (e.g. ready or error), not on the next tick. */
  notify(): void {
    this.#dirty = true;
    this.#kickStatus();
  }

  /** Sends a final status and every pending delete (shutdown). */
  async flush(): Promise<void> {
    if (this.#abort.signal.aborted) return;
    while (this.#statusBusy) await this.#statusBusy;
    this.#dirty = true;
    this.#kickStatus();
    await this.#statusBusy;
    while (this.#deleteBusy) await this.#deleteBusy;
    this.#kickDeletes(true);
    await this.#deleteBusy;
  }

  /** Stops the loops and aborts reports in flight. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#unsubscribe?.();
    this.#abort.abort();
    await Promise.all([this.#statusBusy, this.#deleteBusy, this.#diskBase]);
  }

  /** Delivery figures (copies). */
  get stats(): ReporterStats {
    return { status: this.#status.stats, delete: this.#delete.stats };
  }

  /** The last status posted (accepted or not), for a `/status` page. */
  get lastStatus(): WorkerStatus | undefined {
    return this.#lastStatus;
  }

  #tick(): void {
    if (
      this.#dirty || performance.now() - this.#lastOkAt >= this.#o.heartbeatMs
    ) {
      this.#kickStatus();
    }
    this.#kickDeletes();
  }

  #kickStatus(): void {
    if (this.#abort.signal.aborted) return;
    if (this.#statusBusy) {
      this.#urgent = true;
      return;
    }
    this.#urgent = false;
    this.#statusBusy = this.#sendStatus().finally(() => {
      this.#statusBusy = undefined;
      if (this.#urgent) this.#kickStatus();
    });
  }

  async #sendStatus(): Promise<void> {
    const wasDirty = this.#dirty;
    this.#dirty = false;
    const result = await this.#status.deliver(
      this.#o.reportAddrs,
      () => this.#nextStatus(),
    );
    if (result === "delivered" || result === "unconfirmed") {
      this.#lastOkAt = performance.now();
    } else if (wasDirty) this.#dirty = true;
  }

  /** A status of the figures not yet settled; built anew for every try. */
  async #nextStatus(): Promise<Report> {
    const now = await this.#measureDisk();
    const base = await this.#diskBase;
    const { ledger, identity } = this.#o;
    const window = ledger.window();
    const state = this.#o.state();
    const status = buildWorkerStatus({
      identity,
      ledger,
      window,
      loadtime: state.loadtime,
      errorMsg: state.errorMsg,
      maxPerf: state.maxPerf,
      additionalDiskUsage: Number.isFinite(now) && Number.isFinite(base)
        ? now - (base as number)
        : 0,
    });
    this.#lastStatus = status;
    return {
      body: encodeWorkerStatus(status),
      what: `new_load ${status.new_load}, cur_perf ${status.cur_perf}, ` +
        `rej_load ${status.rej_load}`,
      settle: () => {
        // As in Python, a cancel of work received in an earlier window
        // cannot make new_load negative; that excess is dropped here.
        ledger.settleWindow(window);
        if (Number.isFinite(now)) this.#diskBase = now;
      },
    };
  }

  #kickDeletes(all = false): void {
    if (this.#deleteBusy || this.#abort.signal.aborted) return;
    if (this.#o.ledger.pendingFinishedCount === 0) return;
    this.#deleteBusy = this.#sendDeletes(all).finally(() =>
      this.#deleteBusy = undefined
    );
  }

  /** Posts pending records; more than one batch only for a backlog or `all`. */
  async #sendDeletes(all: boolean): Promise<void> {
    const { ledger, identity, deleteBatchSize } = this.#o;
    const addrs = deleteAddresses(this.#o.reportAddrs);
    for (;;) {
      if (ledger.pendingFinishedCount === 0) return;
      if (addrs.length === 0) {
        // Nowhere to send them: drop rather than grow forever.
        ledger.acknowledge(ledger.pendingFinished());
        return;
      }
      let full = false;
      const result = await this.#delete.deliver(addrs, () => {
        // Only what no earlier try settled: a request_idx is in two
        // bodies only if the first was provably not processed.
        const batch = ledger.pendingFinished().slice(0, deleteBatchSize);
        if (batch.length === 0) return undefined;
        full = batch.length === deleteBatchSize;
        return {
          body: encodeDeleteRequests(identity, batch),
          what: `${batch.length} request_idx`,
          settle: () => ledger.acknowledge(batch),
        };
      });
      // An unanswered batch ends the round: a slow autoscaler gets no burst.
      if (result !== "delivered" || (!all && !full)) return;
    }
  }

  async #measureDisk(): Promise<number> {
    try {
      return await this.#disk();
    } catch {
      return NaN;
    }
  }
}
