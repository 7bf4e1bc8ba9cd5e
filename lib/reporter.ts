/**
 * Reporting to the Vast autoscaler: `/worker_status/` within one tick of any
 * ledger change (else a heartbeat), `/delete_requests/` for finished
 * requests, and a beacon when the worker cannot even start.
 *
 * Everything runs in background loops; the request path only flips a flag
 * (a ledger listener). Counters are settled only after a 2xx, so an outage
 * neither loses nor double-counts workload.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Ledger, RequestRecord } from "./ledger.ts";
import { diskUsedGb } from "./disk_usage.ts";
import {
  buildWorkerStatus,
  cleanAddrs,
  deleteAddresses,
  encodeDeleteRequests,
  encodeWorkerStatus,
  post,
  type ReporterIdentity,
  sleep,
  type WorkerStatus,
} from "./reporter_wire.ts";

export {
  buildWorkerStatus,
  DEFAULT_VERSION,
  deleteAddresses,
  encodeDeleteRequests,
  encodeLaunchFailure,
  encodeWorkerStatus,
  type LaunchFailureBeaconOptions,
  NO_DELETE_ADDR,
  pyFloat,
  type ReporterIdentity,
  reportLaunchFailure,
  runLaunchFailureBeacon,
  type StatusLedger,
  type WorkerStatus,
  type WorkerStatusInput,
} from "./reporter_wire.ts";

const logger = getLogger(["edgeworker", "reporter"]);

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
  identity: ReporterIdentity;
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
  /** Per try. @default {10000} */
  timeoutMs?: number;
  /** Most records per `/delete_requests/` post. @default {1000} */
  deleteBatchSize?: number;
}

/** Delivery figures of one report kind. */
export interface ReportKindStats {
  /** Reports some address accepted (2xx). */
  successes: number;
  /** Reports no address accepted after every try. */
  failures: number;
  /** HTTP tries, successful or not. */
  attempts: number;
  /** Unix ms of the last accepted report. */
  lastSuccessAt?: number;
  /** Last failure cause (`HTTP 503`, a network error, a timeout). */
  lastError?: string;
}

/** Delivery figures by kind. */
export interface ReporterStats {
  /** `/worker_status/`. */
  status: ReportKindStats;
  /** `/delete_requests/`. */
  delete: ReportKindStats;
}

type Kind = keyof ReporterStats;

/**
 * Sends `/worker_status/` and `/delete_requests/` in the background.
 *
 * @example
 * ```ts
 * import { Ledger } from "./ledger.ts";
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
  #failing: Record<Kind, boolean> = { status: false, delete: false };
  #stats: ReporterStats = {
    status: { successes: 0, failures: 0, attempts: 0 },
    delete: { successes: 0, failures: 0, attempts: 0 },
  };
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
      timeoutMs: options.timeoutMs ?? 10_000,
      deleteBatchSize: Math.max(1, options.deleteBatchSize ?? 1000),
    };
    this.#disk = options.diskUsageGb ?? (() => diskUsedGb("/"));
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
    return {
      status: { ...this.#stats.status },
      delete: { ...this.#stats.delete },
    };
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
    const body = encodeWorkerStatus(status);
    if (
      await this.#deliver(
        "status",
        "/worker_status/",
        body,
        this.#o.reportAddrs,
      )
    ) {
      // As in Python, a cancel of work received in an earlier window
      // cannot make new_load negative; that excess is dropped here.
      ledger.settleWindow(window);
      if (Number.isFinite(now)) this.#diskBase = now;
      this.#lastOkAt = performance.now();
    } else if (wasDirty) this.#dirty = true;
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
      const batch: readonly RequestRecord[] = ledger.pendingFinished().slice(
        0,
        deleteBatchSize,
      );
      if (batch.length === 0) return;
      if (addrs.length === 0) {
        // Nowhere to send them: drop rather than grow forever.
        ledger.acknowledge(batch);
        continue;
      }
      const body = encodeDeleteRequests(identity, batch);
      if (!await this.#deliver("delete", "/delete_requests/", body, addrs)) {
        return;
      }
      ledger.acknowledge(batch);
      if (!all && batch.length < deleteBatchSize) return;
    }
  }

  /** Tries each address in order, `attempts` times each; true on a 2xx. */
  async #deliver(
    kind: Kind,
    path: string,
    body: string,
    addrs: string[],
  ): Promise<boolean> {
    const stats = this.#stats[kind];
    const signal = this.#abort.signal;
    for (const addr of addrs) {
      for (let attempt = 1; attempt <= this.#o.attempts; attempt++) {
        if (signal.aborted) return false;
        stats.attempts++;
        const error = await post(
          `${addr}${path}`,
          body,
          signal,
          this.#o.timeoutMs,
        );
        if (error === undefined) {
          stats.successes++;
          stats.lastSuccessAt = Date.now();
          if (this.#failing[kind]) {
            logger.info("{kind} reports delivered again", { kind });
          }
          this.#failing[kind] = false;
          return true;
        }
        stats.lastError = error;
        logger.debug(
          "{kind} report to {addr} failed (try {attempt}): {error}",
          {
            kind,
            addr,
            attempt,
            error,
          },
        );
        if (attempt < this.#o.attempts) {
          await sleep(this.#o.retryDelayMs, signal);
        }
      }
    }
    if (signal.aborted) return false;
    stats.failures++;
    if (!this.#failing[kind]) {
      this.#failing[kind] = true;
      logger.warn("No autoscaler address accepted the {kind} report: {error}", {
        kind,
        error: stats.lastError,
      });
    }
    return false;
  }

  async #measureDisk(): Promise<number> {
    try {
      return await this.#disk();
    } catch {
      return NaN;
    }
  }
}
