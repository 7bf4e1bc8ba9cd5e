/**
 * The figures of one worker's `/dashboard`, taken from its ledger (the one
 * source of the figures it reports): each ledger event updates the last
 * requests (a ring of 50) and the per-second load and served workload in
 * O(1), so the request path pays almost nothing; {@linkcode DashboardFeed.view}
 * builds the page's {@linkcode LiveView} on demand.
 *
 * @module
 */
import type { Ledger, LedgerEvent, RequestRecord } from "../traffic/ledger.ts";
import {
  type LiveRequest,
  type LiveView,
  RecentList,
  SeriesBins,
} from "./live_view.ts";

/** What the dashboard reads besides the ledger, at view time. */
export interface DashboardSources {
  /** `CONTAINER_ID`. */
  id: number;
  /** Public URL. */
  url: string;
  /** Lifecycle state. */
  state: () => string;
  /** Sticky error message; "" when healthy. */
  errorMsg: () => string;
  /** Benchmark throughput. */
  maxPerf: () => number;
  /** Requests waiting in the worker's queues. */
  queued: () => number;
}

/** Python's status words, as `/delete_requests/` reports them. */
const OUTCOME: Record<string, string> = {
  queued: "queued",
  working: "working",
  success: "Success",
  error: "Error",
  cancelled: "Cancelled",
  rejected: "Rejected",
};

/** Follows a ledger for the dashboard. */
export class DashboardFeed {
  #ledger: Ledger;
  #sources: DashboardSources;
  #requests = new RecentList<LiveRequest>(50);
  #series = new SeriesBins(120);
  #unsubscribe: () => void;
  #now: () => number;

  /** Starts following `ledger`. */
  constructor(
    ledger: Ledger,
    sources: DashboardSources,
    now: () => number = Date.now,
  ) {
    this.#ledger = ledger;
    this.#sources = sources;
    this.#now = now;
    this.#unsubscribe = ledger.subscribe((e) => this.#onEvent(e));
  }

  /** Stops following the ledger. */
  close(): void {
    this.#unsubscribe();
  }

  /** The page's data now. */
  view(title: string): LiveView {
    const now = this.#now();
    const s = this.#sources;
    const maxPerf = s.maxPerf();
    const load = this.#ledger.currentLoad;
    // Keep the chart moving when nothing happens.
    this.#series.record(now, load);
    return {
      title,
      now,
      workers: [{
        id: s.id,
        url: s.url,
        state: s.state(),
        load,
        maxPerf,
        queue: this.#ledger.inFlightCount,
        waitSeconds: maxPerf > 0 ? this.#ledger.queueWorkload / maxPerf : null,
        errorMsg: s.errorMsg(),
        updatedAt: now,
      }],
      requests: this.#requests.list(),
      series: this.#series.points(now),
      facts: {
        "in flight": this.#ledger.inFlightCount,
        "queued": s.queued(),
        "received": this.#ledger.receivedCount,
        "awaiting delete_requests": this.#ledger.pendingFinishedCount,
      },
    };
  }

  #onEvent(e: LedgerEvent): void {
    const r = e.record;
    const served = e.type === "finish" && r.status === "success"
      ? r.workload
      : 0;
    this.#series.record(this.#now(), this.#ledger.currentLoad, served);
    this.#requests.set(String(r.id), entry(r, this.#sources.id));
  }
}

function entry(r: RequestRecord, worker: number): LiveRequest {
  const q = r.enteredQueueAt, s = r.workStartedAt, c = r.workCompletedAt;
  const done = r.status !== "queued" && r.status !== "working";
  return {
    requestIdx: String(r.requestIdx),
    worker,
    route: r.route,
    workload: r.workload,
    outcome: OUTCOME[r.status] ?? r.status,
    at: q * 1000,
    queueSeconds: s !== null ? s - q : null,
    workSeconds: done && s !== null && c !== null ? c - s : null,
  };
}
